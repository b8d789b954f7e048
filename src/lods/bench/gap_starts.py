"""Where a gap-benchmark run starts (`lods bench gap --start-colours`).

By default every 3DGS run starts from the same ball of splats, gray (0.5 ± 0.025 per channel), and every 2D run from
noise. A gray start favours the gray completion of a colourless prompt: SDS at s = 1 keeps its start's colour, so
it lands on gray from a gray start (docs/results.md, "Does the result keep its start's colour?"). With
`--start-colours red,blue,...`, seed k starts from colour k mod n of the list:
- 3d (3DGS only): the run's own ball (its seed's), each splat's colour moved from 0.5 to the named colour (its jitter
  kept), written to OUT/starts/<colour>-seed<k>.ply and passed as the run's `init_ply`. Gray is the ball unchanged:
  the default run itself, in the default run's folder.
- 2d: that ball (seed 0's), recoloured, rendered from the front camera over white, written to
  OUT/starts/<colour>.png and passed as the playground's `init`. Every colour, gray included, is a new run (the
  default 2D start is noise).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError

DEFAULT_START = {"2d": "noise", "3d": "gray"}  # a results row's `start` when --start-colours is not given
PICTURE_SIZE = 64  # the 2D start picture's size; distill2d resizes it to the prior's


def parse_colours(text: str | list | tuple | None) -> list[str]:
    """"red, blue" → ["red", "blue"]; every name a colour of the world; None or empty → []."""
    from ..world.shapes import COLORS

    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text or []) if s.strip()]
    unknown = [c for c in names if c not in COLORS]
    if unknown:
        raise UserError(f"--start-colours: unknown colour {unknown[0]!r}; the world's: {', '.join(COLORS)}")
    return names


def start_of(colours: list[str], dims: str, seed: int) -> str:
    """The colour seed `seed` starts from: colour seed mod n of the list; the default start when the list is empty."""
    return colours[seed % len(colours)] if colours else DEFAULT_START[dims]


def changes_the_run(dims: str, start: str) -> bool:
    """Whether a run from `start` differs from the default run (and so needs its own folder and start file)."""
    return start != DEFAULT_START[dims]


def start_file(out: str | Path, dims: str, start: str, seed: int) -> Path:
    return Path(out) / "starts" / (f"{start}.png" if dims == "2d" else f"{start}-seed{seed}.ply")


def recoloured_ball(scene_cfg, seed: int, colour: str):
    """The ball a 3DGS run with this seed starts from, each splat's colour moved from 0.5 to the named colour."""
    from ..scenes.gaussians import GaussianScene, rgb_to_sh, sh_to_rgb
    from ..world.shapes import COLORS

    scene = GaussianScene(scene_cfg, seed=seed)
    with torch.no_grad():
        rgb = sh_to_rgb(scene.f_dc[:, None], None, 0)
        scene.f_dc.copy_(rgb_to_sh((rgb - 0.5 + torch.tensor(COLORS[colour])).clamp(0, 1)))
    return scene


def write_start_picture(colour: str, path: Path) -> Path:
    """The recoloured ball of the fast preset's 3DGS settings (seed 0), front camera, over white, as a PNG."""
    from PIL import Image

    from ..evaluate.set_metrics import front_camera
    from ..export.images import to_uint8
    from ..pipelines.presets import preset_config
    from ..utils.io import atomic_save

    scene = recoloured_ball(preset_config("fast", "gs", "sds").scene_config(), 0, colour)
    with torch.no_grad():
        rgb = scene.render(front_camera(), PICTURE_SIZE, background=torch.ones(3))["rgb"][0]
    atomic_save(path, lambda tmp: Image.fromarray(to_uint8(rgb)).save(tmp, format="PNG"))
    return path


def write_start_ply(scene_cfg, seed: int, colour: str, path: Path) -> Path:
    from ..scenes.ply import save_ply

    path.parent.mkdir(parents=True, exist_ok=True)
    return save_ply(recoloured_ball(scene_cfg, seed, colour), path)  # save_ply writes atomically


def apply_start(job: dict, out: str | Path) -> None:
    """Point a planned job's config at its start file (written later by `write_starts`)."""
    if not changes_the_run(job["dims"], job["start"]):
        return
    path = start_file(out, job["dims"], job["start"], job["seed"])
    if job["dims"] == "2d":
        job["config"].init = str(path)
    else:
        job["config"].init_ply = str(path)


def write_starts(jobs: list[dict]) -> int:
    """Write the start files the jobs name and lack; returns how many were written."""
    n = 0
    for job in jobs:
        cfg = job["config"]
        path = Path((cfg.init if job["dims"] == "2d" else cfg.init_ply) or "")
        if not changes_the_run(job["dims"], job["start"]) or path.exists():
            continue
        if job["dims"] == "2d":
            write_start_picture(job["start"], path)
        else:
            write_start_ply(cfg.scene_config(), cfg.seed, job["start"], path)
        n += 1
    return n
