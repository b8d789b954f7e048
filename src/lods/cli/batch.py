"""`lods generate --prompts FILE`: the batch form of `lods generate` (called by generate.py)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import typer

from ..config import apply_sets
from ..errors import Interrupted, UserError
from .common import apply_flags


def default_out(prompts: Path, backbone: str, guidance: str) -> Path:
    return Path("outputs") / f"batch-{prompts.stem}-{backbone}-{guidance}"


def generate_batch(prompts: Path, flags: dict, out: Path | None, workers: int, backend: str, ray_address: str | None,
                   gpus_per_run: float, quiet: bool) -> None:
    """Build the template config from the flags of `lods generate` and run every prompt of the file."""
    from ..bench.batch import BatchConfig, read_prompts, run_batch
    from ..pipelines.presets import preset_config

    if flags.pop("resume"):
        raise UserError("--prompts resumes by itself (rerun the same command); drop --resume")
    if flags.pop("view"):
        raise UserError("--view follows one run; it cannot be combined with --prompts")
    texts = read_prompts(prompts)
    backbone, guidance = flags["backbone"], flags["guidance"]
    out = out if out is not None else default_out(prompts, backbone, guidance)
    config = preset_config(flags["preset"], backbone, guidance)
    config.prompt, config.seed, config.out = texts[0], flags["seed"], str(out)
    apply_flags(config, prior=flags["prior"], steps=flags["steps"], cfg=flags["cfg"], device=flags["device"])
    if flags["init_ply"] is not None:
        config.init_ply, config.init_ply_scale = str(flags["init_ply"]), flags["init_ply_scale"]
    if flags["shared_draw"]:
        config.guidance_config.shared_draw = True
    config = apply_sets(config, flags["set_"])
    if flags["mesh"] is not None:
        config.export.mesh = flags["mesh"]
    if flags["mesh_faces"] is not None:
        config.export.mesh_max_faces = flags["mesh_faces"]
    threads = os.environ.get("LODS_THREADS")
    bc = BatchConfig(template=config, prompts=texts, out=str(out), workers=workers, backend=backend,
                     ray_address=ray_address, gpus_per_run=gpus_per_run, threads=int(threads) if threads else None,
                     command=command_line(prompts, flags, out, workers, backend, ray_address, gpus_per_run))
    on_row = None if quiet else (lambda row, done, total: typer.echo(progress_line(row, done, total), err=True))
    try:
        result = run_batch(bc, on_row=on_row)
    except (KeyboardInterrupt, Interrupted):
        typer.echo("lods: interrupted; rerun the same command to continue (finished prompts are skipped, unfinished "
                   "ones resume from their last checkpoint)", err=True)
        raise typer.Exit(130) from None
    rows = result["rows"]
    failed = sum(1 for r in rows if str(r["status"]).startswith("failed"))
    typer.echo(f"wrote {out}: {len(rows) - failed} of {len(rows)} prompts finished, {failed} failed; "
               f"{result['csv_path']}, {result['summary_path']}")
    if failed:
        raise typer.Exit(1)


def command_line(prompts: Path, flags: dict, out: Path, workers: int, backend: str, ray_address: str | None,
                 gpus_per_run: float) -> str:
    """`lods generate --prompts FILE ...` with the flags given (the equivalent of what ran)."""
    parts = ["lods", "generate", "--prompts", str(prompts)]
    options = dict(flags, out=out, workers=workers if workers != 1 else None, backend=backend if backend != "local" else None,
                   ray_address=ray_address, gpus_per_run=gpus_per_run if gpus_per_run != 1.0 else None)
    if options.get("init_ply") is None:
        options.pop("init_ply_scale", None)
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--set" if key == "set_" else "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        else:
            for v in value if isinstance(value, list) else [value]:
                parts += [flag, str(v)]
    return " ".join(shlex.quote(p) for p in parts)


def progress_line(row: dict, done: int, total: int) -> str:
    text = f"[{done}/{total}] “{row['prompt']}”: {row['status']}"
    if row.get("seconds") not in ("", None):
        text += f", {float(row['seconds']):.0f} s"
    if row.get("psnr") not in ("", None):
        text += f", PSNR {float(row['psnr']):.2f}"
    return text
