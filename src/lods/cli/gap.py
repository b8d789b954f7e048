"""`lods bench gap`: the guidance-gap benchmark (bench/gap.py), registered under `lods bench` in cli/__init__.py."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..bench.gap import DEFAULT_GRID
from ..bench.gap_starts import changes_the_run
from ..errors import Interrupted, UserError

GRID_HELP = ("Comma-separated method@scale entries; a bare method keeps its preset's scale (CSD has none), inf is 1e6, "
             "a method may carry switches (lods-embedding+shared_draw@1000).")


def gap(
    grid: str = typer.Option(",".join(DEFAULT_GRID), help=GRID_HELP),
    dims: str = typer.Option("2d", help="2d (the 2D playground, one image per run) or 3d (`lods generate` runs)."),
    prompts: Optional[Path] = typer.Option(None, help="A file of world prompts, one a line (default: --prompt-set)."),
    prompt_set: str = typer.Option("default", help="default (12 prompts, half ambiguous) or headline (30: ambiguous "
                                                   "and specified, all three categories)."),
    seeds: int = typer.Option(3, help="Seeds per prompt (0 .. N-1)."),
    steps: Optional[int] = typer.Option(None, help="Steps per run (default: 1000 in 2d, the preset's in 3d)."),
    image_lr: Optional[float] = typer.Option(None, help="2d: Adam's learning rate on the image (default: distill2d's, "
                                                        "3e-2)."),
    backbones: str = typer.Option("gs", help="3d: comma-separated backbones, gs and/or nerf."),
    render_size: Optional[int] = typer.Option(None, help="3d: render size during optimisation (default: the preset's)."),
    num_points: Optional[int] = typer.Option(None, help="3d, gs: initial number of Gaussians (default: the preset's)."),
    start_colours: Optional[str] = typer.Option(None, help="Comma-separated world colours: seed k starts from colour "
                                                           "k mod n (3d: the 3DGS ball recoloured; 2d: its picture). "
                                                           "Default: the gray ball (3d), noise (2d)."),
    baseline: Optional[str] = typer.Option(None, help="The grid entry the paired differences compare with (default: "
                                                      "the SDS entry with the best mean judge confidence)."),
    workers: int = typer.Option(1, help="Runs in parallel (worker processes)."),
    threads: int = typer.Option(1, help="torch threads per run."),
    prior: Optional[str] = typer.Option(None, help="A world prior folder (default: the embedded prior)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    out: Path = typer.Option(Path("outputs/bench-gap"), help="Output folder (rerun the same command to continue)."),
    quiet: bool = typer.Option(False, help="No line per finished run."),
    report_only: bool = typer.Option(False, help="Start no run: write results.csv, summary.md and plots/ from the "
                                                 "runs finished so far (a partial report; the others are \"not run\")."),
    restore_from: Optional[List[Path]] = typer.Option(None, help="A results.csv of an earlier run of this benchmark: "
                                                                 "its finished jobs count as done here (their gap.json "
                                                                 "is written from it), so a benchmark continues on a "
                                                                 "new machine from its csv alone. Repeat it to merge "
                                                                 "several csvs (the first with a job's row wins)."),
):
    """The guidance gap: SDS at low and high s against CSD, VSD and LODS, on ambiguous and specified prompts; writes results.csv, summary.md and plots/.

    Each run is scored against the set of its prompt's completions ("a cube" → the 8 cubes): best-of-set PSNR, the judge's colour and shape confidence, saturation, realism (the prior's own denoising loss) and, over seeds, diversity. Rerunning the same command skips finished runs.
    """  # noqa: E501
    from .common import check_device
    from ..bench.config import parse_list
    from ..bench.batch import read_prompts  # the one prompt-file format (bench batch reads it too)
    from ..bench.gap import GapConfig, parse_grid, run_gap
    from ..bench.results import NOT_RUN
    from ..bench.report import command_line

    gc = GapConfig(grid=parse_grid(grid), dims=dims, prompts=read_prompts(prompts) if prompts else None,
                   prompt_set=prompt_set, seeds=seeds, steps=steps, image_lr=image_lr, backbones=parse_list(backbones, "--backbones"),
                   render_size=render_size, num_points=num_points, baseline=baseline, workers=workers, threads=threads,
                   prior=prior, device=check_device(device), out=str(out), report_only=report_only,
                   restore_from=[str(p) for p in restore_from or []], start_colours=start_colours)
    options = dict(grid=grid, dims=dims, prompts=prompts, prompt_set=None if prompts else prompt_set, seeds=seeds,
                   steps=steps, image_lr=image_lr, backbones=backbones if dims == "3d" else None, render_size=render_size,
                   num_points=num_points, baseline=baseline, workers=workers, threads=threads, prior=prior,
                   device=device, out=out, restore_from=restore_from, start_colours=start_colours)
    gc.command = command_line("gap", options)
    on_row = None if quiet else (lambda row, done, total: typer.echo(_echo(row, done, total), err=True))
    try:
        result = run_gap(gc, on_row=on_row)
    except (KeyboardInterrupt, Interrupted):
        typer.echo("lods: interrupted; rerun the same command to continue (finished runs are kept)", err=True)
        raise typer.Exit(130) from None
    failed = sum(1 for r in result["rows"] if str(r["status"]).startswith("failed"))
    not_run = sum(1 for r in result["rows"] if r["status"] == NOT_RUN)
    if result["rows"] and failed == len(result["rows"]):
        raise UserError(f"every run failed (first: {result['rows'][0]['status']}); see {result['summary_path']}")
    typer.echo(f"wrote {result['csv_path']} ({len(result['rows'])} runs, {failed} failed"
               + (f", {not_run} not run yet" if not_run else "") + f"), {result['summary_path']}, "
               f"{len(result['plots'])} plots in {out / 'plots'}")


def _echo(row: dict, done: int, total: int) -> str:
    start = f" from {row['start']}" if row.get("start") and changes_the_run(row["dims"], row["start"]) else ""
    bits = [f"[{done}/{total}] {row['method']} {row['backbone']} seed {row['seed']}{start} “{row['prompt']}”: {row['status']}"]
    for key, fmt in (("nearest_completion", "→ {}"), ("judge_confidence", "judge {:.2f}"), ("realism", "realism {:.2f}"),
                     ("seconds", "{:.0f} s")):
        v = row.get(key)
        if v not in ("", None) and not (isinstance(v, float) and v != v):
            bits.append(fmt.format(v))
    return ", ".join(bits)
