"""`lods judge train|eval`: the world's classifier."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import UserError

app = typer.Typer(no_args_is_help=True, help="Train the world's classifier (the judge).")


@app.command("train")
def judge_train(
    out: Path = typer.Option(Path("runs/judge"), help="Output folder."),
    install: bool = typer.Option(False, help="Copy the trained judge into the package as the default."),
    init_from: Optional[Path] = typer.Option(None, help="Fine-tune this judge folder (e.g. the shipped one) instead of "
                                             "training from scratch."),
    train_scenes: int = typer.Option(6000, help="Training scenes (4 views each)."),
    extra_multi_scenes: int = typer.Option(16000, help="Extra two-object training scenes (2 views each)."),
    heldout_scenes: int = typer.Option(1000, help="Held-out scenes (4 views each)."),
    ring_scenes: int = typer.Option(300, help="Held-out scenes seen from the 8 evaluation cameras."),
    epochs: int = typer.Option(10),
    lr: float = typer.Option(2e-3),
    vary: bool = typer.Option(True, help="Train on renders with the world's shade and light variance."),
    cache_dir: Path = typer.Option(Path("runs/judge_data"), help="Rendered datasets, reused across runs."),
    workers: int = typer.Option(1, help="Processes rendering the training set."),
    threads: int = typer.Option(1, help="Torch threads for training."),
):
    """Train the world's classifier on ground-truth renders."""
    from ..pipelines.train_judge import TrainJudgeConfig, train_judge

    if init_from is not None and not (init_from / "judge.safetensors").exists():
        raise UserError(f"--init-from {init_from}: no judge.safetensors there")
    config = TrainJudgeConfig(out=str(out), init_from=str(init_from or ""), train_scenes=train_scenes,
                              extra_multi_scenes=extra_multi_scenes, heldout_scenes=heldout_scenes,
                              ring_scenes=ring_scenes, epochs=epochs, lr=lr, vary=vary, cache_dir=str(cache_dir),
                              workers=workers, threads=threads)
    try:
        config.validate()
    except ValueError as e:
        raise UserError(str(e)) from None
    result = train_judge(config)
    typer.echo(json.dumps({k: result[k] for k in ("heldout_accuracy", "ring_accuracy", "train_images", "train_seconds")},
                          indent=2))
    if install:
        from ..priors.embedded import install_prior
        from ..world.judge import DEFAULT_DIR

        install_prior(out, DEFAULT_DIR)  # the same atomic folder swap as the prior's
        typer.echo(f"installed as the default judge: {DEFAULT_DIR}")


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
