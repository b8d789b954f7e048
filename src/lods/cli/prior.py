"""`lods prior train|train-vae|sample|eval`: the embedded prior."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer

from ..errors import UserError
from .common import DEVICE_HELP, PRIOR_HELP, QUIET_HELP, check_device

app = typer.Typer(no_args_is_help=True, help="Train and sample the embedded prior.")


@app.command("train")
def prior_train(
    out: Path = typer.Option(Path("runs/prior"), help="Run folder (checkpoints, the exported prior in OUT/prior)."),
    steps: int = typer.Option(8000, help="Total training steps."),
    batch_size: int = typer.Option(64),
    lr: float = typer.Option(8e-4),
    data_scenes: int = typer.Option(12000, help="Scenes rendered for the training set (4 views each)."),
    seed: int = typer.Option(0),
    checkpoint_every: int = typer.Option(200),
    time_limit: float = typer.Option(0.0, help="Stop after this many minutes (0: no limit); rerun to resume."),
    workers: int = typer.Option(2, help="Processes rendering the training set."),
    install: bool = typer.Option(False, help="Copy the exported prior into the package as the new default (with "
                                 "--vae-from: as the embedded latent prior, `--prior embedded-latent`)."),
    init_from: Optional[Path] = typer.Option(None, help="Warm-start from this exported prior folder (e.g. the shipped one)."),
    warmup_steps: int = typer.Option(200, help="Linear learning-rate warm-up steps."),
    vary: bool = typer.Option(True, help="Render the training set with the world's shade and light variance."),
    attribute_dropout: bool = typer.Option(True, help="Drop colours / shapes from captions at the world's rates."),
    pooled_text: bool = typer.Option(True, help="Add the pooled text embedding to the timestep embedding (prior v2)."),
    cross_attention_from: int = typer.Option(8, help="The finest level with cross-attention to the text: 8 (8² and "
                                             "4², priors v1 and v2), 16 (about 1.5× the step cost) or 32 (about 9×)."),
    vae_from: Optional[Path] = typer.Option(None, help="A trained autoencoder folder (`lods prior train-vae`'s OUT/vae): "
                                            "train a latent prior (16² × 4 latents) that ships it in vae/."),
    data_from: Optional[Path] = typer.Option(None, help="A folder holding the rendered training set already (an "
                                             "earlier run's folder), instead of rendering it again."),
    quiet: bool = typer.Option(False, help=QUIET_HELP),
):
    """Train (or resume) the embedded prior on renders of the world."""
    from ..pipelines.train_prior import TrainPriorConfig, train_prior
    from ..utils.progress import progress_bar

    config = TrainPriorConfig(out=str(out), steps=steps, batch_size=batch_size, lr=lr, data_scenes=data_scenes, seed=seed,
                              checkpoint_every=checkpoint_every, time_limit_min=time_limit, workers=workers,
                              init_from=str(init_from) if init_from else "", warmup_steps=warmup_steps, vary=vary,
                              attribute_dropout=attribute_dropout, pooled_text=pooled_text,
                              cross_attention_from=cross_attention_from, vae_from=str(vae_from) if vae_from else "",
                              data_from=str(data_from) if data_from else "")
    if init_from is not None and not (init_from / "unet").is_dir():
        raise UserError(f"--init-from {init_from}: not a prior folder (no unet/ inside)")
    if vae_from is not None and init_from is not None:
        raise UserError("--init-from warm-starts a pixel prior; a latent prior (--vae-from) starts from scratch")
    try:
        config.validate()
    except ValueError as e:
        raise UserError(str(e)) from None
    with progress_bar("prior", steps, enabled=not quiet) as bar:
        metrics = train_prior(config, progress=bar)
    typer.echo(f"step {metrics['step']}: loss {metrics['final_loss']:.4f}; prior in {out / 'prior'}")
    if install:
        from ..priors.embedded import EMBEDDED_LATENT_PRIOR_DIR, EMBEDDED_PRIOR_DIR, install_prior

        target = EMBEDDED_LATENT_PRIOR_DIR if vae_from is not None else EMBEDDED_PRIOR_DIR
        install_prior(out / "prior", target)
        typer.echo(f"installed as the {'embedded latent' if vae_from is not None else 'default'} prior: {target}")


@app.command("train-vae")
def prior_train_vae(
    out: Path = typer.Option(Path("runs/vae"), help="Run folder (checkpoints; the autoencoder in OUT/vae)."),
    steps: int = typer.Option(3000, help="Total training steps."),
    batch_size: int = typer.Option(32),
    lr: float = typer.Option(1e-3),
    kl_weight: float = typer.Option(1e-6, help="Weight of the KL term against the per-value reconstruction MSE."),
    data_scenes: int = typer.Option(12000, help="Scenes rendered for the training set (4 views each)."),
    seed: int = typer.Option(0),
    checkpoint_every: int = typer.Option(100),
    time_limit: float = typer.Option(0.0, help="Stop after this many minutes (0: no limit); rerun to resume."),
    workers: int = typer.Option(2, help="Processes rendering the training set."),
    data_from: Optional[Path] = typer.Option(None, help="A folder holding the rendered training set already."),
    quiet: bool = typer.Option(False, help=QUIET_HELP),
):
    """Train (or resume) the autoencoder of a latent embedded prior (then `prior train --vae-from OUT/vae`)."""
    from ..pipelines.train_vae import TrainVaeConfig, train_vae
    from ..utils.progress import progress_bar

    config = TrainVaeConfig(out=str(out), steps=steps, batch_size=batch_size, lr=lr, kl_weight=kl_weight,
                            data_scenes=data_scenes, seed=seed, checkpoint_every=checkpoint_every,
                            time_limit_min=time_limit, workers=workers, data_from=str(data_from) if data_from else "")
    try:
        config.validate()
    except ValueError as e:
        raise UserError(str(e)) from None
    with progress_bar("autoencoder", steps, enabled=not quiet) as bar:
        metrics = train_vae(config, progress=bar)
    typer.echo(f"step {metrics['step']}: reconstruction {metrics['final_psnr_db']:.1f} dB; scaling factor "
               f"{metrics['scaling_factor']:.3f}; autoencoder in {out / 'vae'}")


@app.command("sample")
def prior_sample(
    prompts: list[str] = typer.Argument(..., help="One or more prompts (one row of the grid each)."),
    prior: Optional[str] = typer.Option(None, help=PRIOR_HELP),
    cfg: float = typer.Option(5.0, "--cfg", help="CFG scale."),
    n: int = typer.Option(8, help="Samples per prompt."),
    steps: int = typer.Option(50, help="DDIM steps."),
    seed: int = typer.Option(0),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    out: Path = typer.Option(Path("grid.png"), help="PNG grid to write."),
):
    """Sample the prior with classifier-free guidance into a grid (one row per prompt)."""
    from ..evaluate.prior_eval import sample_grid
    from ..priors.prior import Prior

    if n <= 0 or steps <= 0 or not 0 < cfg < math.inf:
        raise UserError(f"--n and --steps must be positive and --cfg positive and finite (got --cfg {cfg})")
    p = Prior.load(prior, device=check_device(device))
    for text in prompts:
        p.check_prompt(text)
    sample_grid(p, prompts, out, cfg=cfg, n=n, steps=steps, seed=seed)
    typer.echo(f"wrote {out}")


@app.command("eval")
def prior_eval(
    prior: Optional[str] = typer.Option(None, help=PRIOR_HELP),
    cfg: list[float] = typer.Option([5.0, 1.0], "--cfg", help="CFG scales to evaluate (repeat the option)."),
    n: int = typer.Option(2, help="Samples per prompt (0: only the --coverage counts)."),
    steps: int = typer.Option(25, help="DDIM steps."),
    seed: int = typer.Option(0),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    out: Optional[Path] = typer.Option(None, help="Write the figures as JSON here."),
    judge: Optional[Path] = typer.Option(None, help="Judge folder (default: the shipped judge)."),
    coverage: int = typer.Option(0, help="Also draw this many samples of 'a cube' and 'a red object' at each --cfg and "
                                 "count the colours / shapes the judge sees (the issue's 32)."),
):
    """The judge on the prior's samples: how often it draws the prompted shape, colour, context and relation."""

    from ..evaluate.prior_eval import evaluate_prior
    from ..priors.prior import Prior
    from ..utils.io import atomic_write_json
    from ..world.judge import Judge

    if n < 0 or (n == 0 and coverage <= 0) or steps <= 0 or not all(0 < c < math.inf for c in cfg):
        raise UserError("--n (0 only with --coverage) and --steps must be positive and every --cfg positive and finite")
    p = Prior.load(prior, device=check_device(device))
    if p.vocabulary is None:
        raise UserError("prior eval needs a world prior (its judge only knows the world)")
    reader = Judge.load(judge)
    result = evaluate_prior(p, reader, scales=tuple(cfg), n_per_prompt=n, steps=steps, seed=seed) if n > 0 else {}
    if coverage > 0:
        from ..evaluate.prior_eval import COVERAGE_PROMPTS, completion_coverage

        unknown = [w for q in COVERAGE_PROMPTS for w in q.split() if w not in p.vocabulary]
        if unknown:
            raise UserError(f"--coverage: this prior does not know {sorted(set(unknown))} (a prior from before issue 10)")
        result["coverage"] = [completion_coverage(p, reader, q, n=coverage, scale=c, steps=steps, seed=seed)
                              for c in cfg for q in COVERAGE_PROMPTS]
    if out is not None:
        atomic_write_json(out, result)
    typer.echo(json.dumps(result, indent=2))
