"""What the viewer shows: a run folder's files and progress, or the runs of a benchmark folder.

A run is a folder with a config.yaml (written by `lods generate` / `lods image-to-3d` before the first step); a
benchmark is a folder with runs below it. Nothing here writes into a run folder: a splat preview of a run in
progress is exported from its last checkpoint into a cache folder owned by the server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import UserError

CHECKPOINT = Path("checkpoints") / "last.safetensors"
# files a run page may fetch: name in the run folder -> role
RUN_FILES = {
    "model.ply": "ply", "mesh.glb": "mesh", "turntable.mp4": "turntable", "turntable.gif": "turntable",
    "views.png": "views", "reference.png": "reference", "metrics.json": "metrics", "mesh.obj": "obj",
    "mesh.mtl": "mtl", "mesh.png": "texture", "config.yaml": "config",
}
MAX_CURVE_POINTS = 400


class NotARunError(UserError):
    """The folder is neither a run nor a benchmark."""


def is_run(folder: Path) -> bool:
    return (Path(folder) / "config.yaml").is_file()


def find_runs(folder: Path, max_depth: int = 4) -> list[Path]:
    """Run folders at most `max_depth` levels below `folder`, sorted by path."""
    found, level = [], [Path(folder)]
    for _ in range(max_depth):
        below = []
        for d in level:
            try:
                subs = [p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")]
            except OSError:
                continue
            for p in subs:
                (found if is_run(p) else below).append(p)  # no runs inside runs
        level = below
    return sorted(found)


def classify(folder: Path) -> str:
    """"run" or "bench"; raises NotARunError (or FileNotFoundError) otherwise, with a line that says why."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(2, "no such folder", str(folder))
    if not folder.is_dir():
        raise NotARunError(f"{folder} is a file, not a run folder")
    if is_run(folder):
        return "run"
    if find_runs(folder):
        return "bench"
    raise NotARunError(
        f"{folder} is not a run folder (no config.yaml) and holds no runs; pass the --out folder of "
        "`lods generate` or of a benchmark"
    )


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def checkpoint_meta(run: Path) -> dict:
    """The JSON metadata of the run's last checkpoint (step, history), without reading its tensors; {} if none."""
    path = Path(run) / CHECKPOINT
    if not path.is_file():
        return {}
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {}).get("lods", "{}"))
    except Exception:  # noqa: BLE001 - a checkpoint being replaced or damaged: no progress to show yet
        return {}


def _curve(history: list) -> dict[str, list]:
    """Loss curves {name: [[step, value], ...]}, thinned to at most MAX_CURVE_POINTS points each."""
    stride = max(1, len(history) // MAX_CURVE_POINTS)
    curves: dict[str, list] = {}
    for h in history[::stride]:
        for k, v in h.items():
            if k.startswith("loss_") and isinstance(v, (int, float)):
                curves.setdefault(k, []).append([h.get("step"), v])
    return curves


@dataclass
class RunState:
    """What a run page shows; `version` changes whenever a file or the checkpoint changes."""

    info: dict
    files: dict[str, str]  # role -> file name in the run folder
    version: str


def run_state(run: Path) -> RunState:
    run = Path(run)
    config = _read_yaml(run / "config.yaml")
    metrics = _read_json(run / "metrics.json")
    finished = bool(metrics)
    meta = {} if finished else checkpoint_meta(run)
    history = metrics.get("history") or meta.get("history") or []
    files, stamps = {}, []
    for name, role in RUN_FILES.items():
        p = run / name
        if p.is_file() and role not in files:
            files[role] = name
            stamps.append(f"{name}:{p.stat().st_mtime_ns}")
    ckpt = run / CHECKPOINT
    if ckpt.is_file():
        stamps.append(f"ckpt:{ckpt.stat().st_mtime_ns}")
    backbone = config.get("backbone", metrics.get("backbone"))
    notes = []
    if "ply" not in files:
        if backbone == "nerf":
            notes.append("This run is a NeRF: it has no Gaussian splat (model.ply); the mesh is its export.")
        elif ckpt.is_file() and backbone == "gs":
            notes.append("In progress: the splat is a preview from the last checkpoint.")
        else:
            notes.append("No splat yet: model.ply is written when the run finishes.")
    if "mesh" not in files:
        reason = (metrics.get("outputs") or {}).get("mesh_error")
        notes.append(f"No mesh: {reason}" if reason else "No mesh yet: mesh.glb is written when the run finishes.")
    info = {
        "prompt": config.get("prompt", metrics.get("prompt", "")),
        "backbone": backbone,
        "guidance": config.get("guidance", metrics.get("guidance")),
        "task": config.get("task", "text-to-3d"),
        "steps": config.get("steps", metrics.get("steps")),
        "step": metrics.get("steps") if finished else meta.get("step", 0),
        "finished": finished,
        "seconds": metrics.get("seconds"),
        "ground_truth": {k: v for k, v in (metrics.get("ground_truth") or {}).items()
                         if not isinstance(v, (list, dict)) and k not in ("prompt", "caption")},
        "curves": _curve(history),
        "notes": notes,
        "preview": bool(backbone == "gs" and "ply" not in files and ckpt.is_file()),
    }
    return RunState(info=info, files=files, version="|".join(stamps))


def gallery(bench: Path) -> list[dict]:
    """One entry per run below `bench`: its path relative to it, prompt, method, backbone, key metrics."""
    bench = Path(bench)
    entries = []
    for run in find_runs(bench):
        config = _read_yaml(run / "config.yaml")
        metrics = _read_json(run / "metrics.json")
        truth = metrics.get("ground_truth") or {}
        entries.append({
            "path": run.relative_to(bench).as_posix(),
            "prompt": config.get("prompt", ""),
            "guidance": config.get("guidance"),
            "backbone": config.get("backbone"),
            "seed": config.get("seed"),
            "finished": bool(metrics),
            "thumbnail": "views.png" if (run / "views.png").is_file() else None,
            "metrics": {k: truth[k] for k in ("psnr", "ssim", "iou", "recognized_views", "n_views") if k in truth},
            "seconds": metrics.get("seconds"),
        })
    return entries


def preview_ply(run: Path, cache: Path) -> Path | None:
    """A model.ply exported from the run's last checkpoint into `cache` (reused while the checkpoint is
    unchanged); None when the run has no Gaussian checkpoint."""
    run, cache = Path(run), Path(cache)
    ckpt = run / CHECKPOINT
    if not ckpt.is_file():
        return None
    stamp = ckpt.stat().st_mtime_ns
    key = f"{abs(hash(str(run.resolve())))}-{stamp}.ply"
    target = cache / key
    if target.is_file():
        return target
    from safetensors import safe_open

    from ..scenes.ply import write_ply
    from ..scenes.gaussians import PARAMS

    try:
        with safe_open(str(ckpt), framework="pt") as f:
            keys = set(f.keys())
            if f"scene/gaussians/{PARAMS[0]}" not in keys:
                return None
            tensors = {name: f.get_tensor(f"scene/gaussians/{name}") for name in PARAMS}
    except Exception:  # noqa: BLE001 - replaced while being read: the next poll tries again
        return None
    for old in cache.glob(f"{key.split('-')[0]}-*.ply"):
        old.unlink(missing_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    return write_ply(tensors, target)
