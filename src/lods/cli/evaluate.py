"""`lods eval RUN_DIR`: score a finished run against the world's 3D truth."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def eval_run(
    run_dir: Path = typer.Argument(..., help="A run folder written by `lods generate` or `lods image-to-3d`."),
):
    """Score a finished run against the world's 3D truth; prints and rewrites metrics.json's ground_truth."""

    from ..pipelines.evaluate_run import evaluate_run

    result = evaluate_run(run_dir)
    if result.get("unfinished"):
        typer.echo(f"lods: warning: {run_dir} is unfinished; scored its checkpoint at step {result['checkpoint_step']} "
                   "(finish it with `lods generate ... --resume`)", err=True)
    typer.echo(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}, indent=2))
