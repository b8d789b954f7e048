"""Continue a gap benchmark from a results.csv alone (`lods bench gap --restore-from`).

A long benchmark outlives the machine it started on; its results.csv is the small part worth keeping. Restoring
writes a job's `gap.json` from the csv row of the same job (method and scale, backbone, seed, prompt, steps, the start
and, in 2D, the image's learning rate; a csv from before a column ran its default: the gray ball in 3D, noise in 2D,
the playground's learning rate), so the
run counts as finished and is not run again; the gap.json records where it came from, and the new csv row keeps
the old row's run_dir (where the run's files are, if anywhere). The run folder's other files (checkpoints, renders)
are not copied: a picture grid shows a restored run only where its old folder is on this machine.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import UserError
from .results import is_finished

_TEXT = ("nearest_completion",)
_KEY = ("method", "backbone", "seed", "prompt", "steps")
_IDENTITY = {"dims", "method", "guidance", "backbone", "seed", "start", "prompt", "kind", "category", "status", "run_dir"}


def _key(method, backbone, seed, prompt, steps, image_lr, start) -> tuple:
    return (str(method), str(backbone), int(seed), str(prompt), "" if steps in ("", None) else int(steps),
            "" if image_lr in ("", None) else float(image_lr), str(start))


def _start(dims: str, start) -> str:
    """A row's start ("" or absent in a csv from before the column: the default start of its dims)."""
    from .gap_starts import DEFAULT_START

    return str(start) if start not in ("", None) else DEFAULT_START.get(dims, "")


def _image_lr(dims: str, image_lr) -> float | str:
    """A 2D run's image learning rate ("" in a csv from before the column: the playground's default); "" in 3D."""
    from ..pipelines.distill2d import Distill2DConfig

    if dims != "2d":
        return ""
    return Distill2DConfig.lr if image_lr in ("", None) else float(image_lr)


def read_finished(path: str | Path) -> dict[tuple, dict]:
    """The finished rows of a results.csv, by job key."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise UserError(f"cannot read --restore-from {path}: {e.strerror or e}") from None
    if rows and not set(_KEY) <= set(rows[0]):
        raise UserError(f"{path} is not a results.csv of `lods bench gap` (it lacks {', '.join(_KEY)})")
    return {_key(*(r[k] for k in _KEY), _image_lr(r.get("dims", ""), r.get("image_lr")),
                 _start(r.get("dims", ""), r.get("start"))): r
            for r in rows if is_finished(r.get("status"))}


def scores_from_row(row: dict) -> dict:
    """A gap.json's content from a csv row: the score columns, numbers as numbers, empty cells left out."""
    data = {}
    for k, v in row.items():
        if k in _IDENTITY or v in ("", None):
            continue
        data[k] = v if k in _TEXT else (int(v) if k in ("n_completions", "recognized_views", "n_views", "steps")
                                        else float(v))
    return data


def restore(jobs: list[dict], csv_paths: list, gap_file: str) -> int:
    """Write gap.json for each job that has none and a finished row in one of `csv_paths` (in order: the first csv
    with the job's row wins); returns how many. Every csv is read before anything is written, so
    an unreadable one leaves the folder as it was."""
    from ..utils.io import atomic_write_json

    sources = [(str(p), read_finished(p)) for p in csv_paths]
    n = 0
    for job in jobs:
        cfg = job["config"]
        gap = Path(cfg.out) / gap_file
        if gap.exists():
            continue
        key = _key(job["label"], job["backbone"], job["seed"], job["prompt"], cfg.steps,
                   _image_lr(job["dims"], getattr(cfg, "lr", None)), job["start"])
        found = next(((src, rows[key]) for src, rows in sources if key in rows), None)
        if found is None:
            continue
        gap.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(gap, {**scores_from_row(found[1]), "restored_from": found[0],
                                "restored_run_dir": found[1].get("run_dir") or ""})
        n += 1
    return n
