"""`lods distill2d`: the 2D playground, one image optimised with a guidance."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import DEVICE_HELP, PRIOR_HELP, QUIET_HELP, check_device, fit_phrase


def distill2d(
    prompt: str = typer.Argument(..., help="Text prompt."),
    guidance: str = typer.Option("lods-embedding", help="sds, csd, lods-embedding, lods-lora, vsd, ism, sdi, nfsd or asd."),
    prior: Optional[str] = typer.Option(None, help=PRIOR_HELP),
    steps: int = typer.Option(500, help="Optimisation steps."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="CFG scale (default: the method's default for the prior)."),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    out: Path = typer.Option(Path("outputs/distill2d"), help="Output folder."),
    space: str = typer.Option("model", help="The optimised tensor: model (the prior's space: a latent prior's latent) "
                                            "or pixels (the picture, through a sigmoid, encoded at every step, as a "
                                            "3D run's renders)."),
    init: Optional[Path] = typer.Option(None, help="Start from this picture (encoded), an image.safetensors, or a "
                                                   "finished distill2d run folder (exactly where it ended)."),
    quiet: bool = typer.Option(False, help=QUIET_HELP),
    preset: str = typer.Option("fast", help="The method's learning rates and options from this preset: fast (tuned on "
                                            "the embedded prior) or paper (Stable Diffusion's); the scale is --cfg's."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override any config field: "
                                                                 "--set guidance_config.embedding_lr=1e-4."),
):
    """Optimise one image with a guidance (the 2D playground): writes image.png, image.safetensors (the final tensor),
    metrics.json, config.yaml, loss.png."""
    from ..config import apply_sets
    from ..pipelines.distill2d import Distill2DConfig, preset_guidance_config, run_distill2d
    from ..utils.progress import progress_bar

    config = Distill2DConfig(prompt=prompt, guidance=guidance, prior=prior, steps=steps, guidance_scale=cfg, seed=seed,
                             device=check_device(device), out=str(out),
                             init=None if init is None else str(init), space=space, guidance_config=preset_guidance_config(guidance, preset))
    config = apply_sets(config, set_)
    with progress_bar(f"distill2d {guidance}", steps, enabled=not quiet) as bar:
        metrics = run_distill2d(config, progress=bar)
    line = f"wrote {out}/image.png (final loss {metrics.get('final_loss', float('nan')):.4g})"
    if metrics.get("learned_fit") is not None:
        line += "; " + fit_phrase(metrics["learned_fit"])
    typer.echo(line)
