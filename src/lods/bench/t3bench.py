"""T3Bench's side of the quality benchmark: its prior check, and ImageReward scores from local files only."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError

def check_t3bench_prior(prior: str | None) -> None:
    """T3Bench's free-text prompts need an open-vocabulary prior (Stable Diffusion), not the embedded one."""
    if prior is None:
        raise UserError("--suite t3bench needs --prior: a Stable Diffusion folder or hub id (e.g. "
                        "stabilityai/stable-diffusion-2-1-base); the embedded prior only reads captions of the world")
    path = Path(prior).expanduser()
    meta = path / "lods_prior.json"
    if path.is_dir() and meta.exists():
        try:
            vocab = json.loads(meta.read_text()).get("vocabulary")
        except (OSError, ValueError):
            vocab = None
        if vocab:
            raise UserError(f"the prior {prior} has a closed vocabulary ({len(vocab)} words) and cannot read T3Bench's "
                            "prompts; pass a Stable Diffusion prior with --prior")


def imagereward_dir(path: str | None) -> Path:
    return Path(path).expanduser() if path else Path("~/.cache/ImageReward").expanduser()


def imagereward_missing(weights_dir: str | None = None) -> list[str]:
    """What is missing to score with ImageReward (empty: ready). Nothing is downloaded."""
    import importlib.util

    missing = []
    if importlib.util.find_spec("ImageReward") is None:
        missing.append("the Python package `ImageReward` (pip install image-reward)")
    folder = imagereward_dir(weights_dir)
    for name in ("ImageReward.pt", "med_config.json"):
        if not (folder / name).is_file():
            missing.append(f"{folder / name} (from the Hugging Face repo THUDM/ImageReward)")
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache("bert-base-uncased", "vocab.txt")
    except Exception:  # noqa: BLE001 - any failure means: not usable offline
        cached = None
    if not isinstance(cached, str):
        missing.append("the bert-base-uncased tokenizer in the Hugging Face cache (ImageReward's BLIP text side)")
    return missing


def imagereward_message(missing: list[str]) -> str:
    return ("ImageReward scores were not computed; missing: " + "; ".join(missing) +
            ". The runs' time and losses are recorded; install the missing parts and rerun the same command to score "
            "the finished runs (they are not recomputed).")


class ImageRewardScorer:
    """ImageReward (THUDM) from local files only: mean reward over a run's evaluation views."""

    def __init__(self, weights_dir: str | None = None, device: str = "cpu"):
        import torch
        from ImageReward.ImageReward import ImageReward as _Model

        folder = imagereward_dir(weights_dir)
        self.device = device
        self.model = _Model(device=device, med_config=str(folder / "med_config.json")).to(device)
        self.model.load_state_dict(torch.load(folder / "ImageReward.pt", map_location="cpu", weights_only=True), strict=False)
        self.model.eval()

    def score_run(self, run_dir: Path, prompt: str) -> float:
        import tempfile

        import torch

        paths = []
        with tempfile.TemporaryDirectory() as tmp:
            for i, tile in enumerate(view_tiles(run_dir)):
                p = Path(tmp) / f"view{i}.png"
                tile.save(p)
                paths.append(str(p))
            with torch.no_grad():
                rewards = self.model.score(prompt, paths)
        rewards = rewards if isinstance(rewards, list) else [rewards]
        return float(sum(rewards) / len(rewards))


def view_tiles(run_dir: Path) -> list:
    """The evaluation views of a finished run, cut out of its views.png (PIL images)."""
    import yaml
    from PIL import Image

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    size, n = int(cfg["export"]["views_size"]), int(cfg["export"]["eval_views"])
    grid = Image.open(run_dir / "views.png").convert("RGB")
    nrow = min(4, n)
    return [grid.crop(((i % nrow) * size, (i // nrow) * size, (i % nrow + 1) * size, (i // nrow + 1) * size)) for i in range(n)]


def score_imagereward(bc, rows: list[dict], message=None) -> list[str]:
    """Add ImageReward to the rows of finished runs (cached per run in imagereward.json); `bc`: the BenchConfig.
    Returns notes for summary.md (what is missing to score), empty when scored."""
    finished = [r for r in rows if not str(r["status"]).startswith("failed")]
    pending = []
    for r in finished:
        cache = Path(r["run_dir"]) / "imagereward.json"
        if cache.exists():
            r["imagereward"] = float(json.loads(cache.read_text())["imagereward"])
        else:
            pending.append(r)
    if not pending:
        return []
    missing = imagereward_missing(bc.imagereward_dir)
    if missing:
        text = imagereward_message(missing)
        if message:
            message(text)
        return [text]
    from ..utils.io import atomic_write_json

    device = bc.device or ("cuda" if bc.resolved_preset() == "paper" else "cpu")
    scorer = ImageRewardScorer(bc.imagereward_dir, device=device)
    for r in pending:
        r["imagereward"] = scorer.score_run(Path(r["run_dir"]), r["prompt"])
        atomic_write_json(Path(r["run_dir"]) / "imagereward.json", {"imagereward": r["imagereward"], "prompt": r["prompt"]})
    return []
