"""`lods judge train|eval`: the world's classifier."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..errors import UserError

app = typer.Typer(no_args_is_help=True, help="Train the world's classifier (the judge).")


@app.command("train")
def judge_train(
    out: Path = typer.Option(Path("runs/judge"), help="Output folder."),
    install: bool = typer.Option(False, help="Copy the trained judge into the package as the default."),
):
    """Train the world's classifier on ground-truth renders."""
    from ..pipelines.train_judge import TrainJudgeConfig, train_judge

    result = train_judge(TrainJudgeConfig(out=str(out)))
    typer.echo(str(result))


@app.command("eval")
def judge_eval(
    judge: Path = typer.Option(None, help="Judge folder (default: the shipped judge)."),
    scenes: int = typer.Option(300, min=1, help="Fresh world scenes to render."),
    seed: int = typer.Option(3000, help="Scene seed (the training data used 1000, its held-out set 2000)."),
    cameras: str = typer.Option("ring", help="'ring': the 8 evaluation cameras; 'random': 4 random training-range views."),
    out: Path = typer.Option(None, help="Also write the accuracies to this JSON file."),
    vary: bool = typer.Option(False, help="Render with the world's shade and light variance (default: canonical renders)."),
):
    """Held-out accuracy of the judge on fresh ground-truth renders (exact match = every head right)."""
    import torch

    from ..pipelines.train_judge import evaluate_judge, label_targets, render_scenes
    from ..utils.io import atomic_write_json
    from ..world.judge import SIZE, Judge

    if cameras not in ("ring", "random"):
        raise UserError(f"--cameras must be 'ring' or 'random', got {cameras!r}")
    net = Judge.load(judge)
    data = render_scenes(scenes, seed, SIZE, ring=cameras == "ring", vary=vary)
    acc = evaluate_judge(net, torch.from_numpy(data.images), label_targets(data.labels))
    result = {"judge": str(judge or "shipped"), "scenes": scenes, "seed": seed, "cameras": cameras, "vary": vary,
              "images": len(data.images), **acc}
    if out is not None:
        atomic_write_json(out, result)
    typer.echo(json.dumps(result, indent=2))
