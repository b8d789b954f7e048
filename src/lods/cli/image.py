"""`lods image-to-3d`: image-to-3D from one image."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import apply_sets
from ..errors import UserError
from .common import PRIOR_HELP, QUIET_HELP, apply_flags, given, not_started


def image_to_3d(
    ctx: typer.Context,
    image: Optional[Path] = typer.Argument(None, help="The object's image (RGBA, or RGB on a plain background); "
                                           "not needed with --resume."),
    prompt: Optional[str] = typer.Option(None, help="What the image shows (default with the embedded prior: the "
                                         "world's classifier names it; required with any other prior)."),
    backbone: str = typer.Option("gs", help="gs (3D Gaussians) or nerf (radiance field)."),
    guidance: str = typer.Option("lods-embedding", help="sds, csd, lods-embedding, lods-lora, vsd, ism, sdi, nfsd, asd, or none "
                                 "(reconstruction only)."),
    prior: Optional[str] = typer.Option(None, help=PRIOR_HELP),
    preset: str = typer.Option("fast", help="fast (CPU, embedded prior) or paper (CFG 100, LODS lr 1e-3, CUDA + SD 2.1)."),
    steps: Optional[int] = typer.Option(None, help="Optimisation steps (default: the preset's)."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="CFG scale (default: the preset's for the guidance)."),
    seed: int = typer.Option(0, help="Random seed."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: the preset's)."),
    out: Optional[Path] = typer.Option(None, help="Run folder (default: outputs/<image name>-<backbone>-<guidance>)."),
    resume: bool = typer.Option(False, help="Continue the run in OUT from its last checkpoint."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override any config field: --set lambdas.rgb=5000."),
    quiet: bool = typer.Option(False, help=QUIET_HELP),
):
    """Image-to-3D: fit the image as the front view, the prior on novel views; writes reference.png, model.ply,
    mesh.glb, turntable, views.png and metrics.json (reference-view PSNR/SSIM, novel-view scores)."""
    from ..pipelines.image_to_3d import image_preset_config, load_image_run_config, run_image_to_3d
    from ..utils.progress import progress_bar

    if resume and out is not None and image is not None and not_started(out):
        resume = False  # stopped before it wrote its config: start it over
    if resume:
        if out is None:
            raise UserError("--resume needs --out, the run folder to continue")
        config = load_image_run_config(out)
        config.out = str(out)  # the folder given, wherever the run was first written
        # flags given on the command line are checked against the run (run_generate lists any difference)
        if image is not None:
            config.image = str(image)
        if prompt is not None:
            config.prompt = prompt
        for name, value in (("backbone", backbone), ("guidance", guidance), ("preset", preset), ("seed", seed)):
            if given(ctx, name):
                setattr(config, name, value)
        apply_flags(config, prior=prior, steps=steps, cfg=cfg, device=device)
    else:
        if image is None:
            raise UserError("missing IMAGE: the image to reconstruct")
        if out is None:
            stem = "-".join("".join(ch if ch.isalnum() else " " for ch in image.stem.lower()).split())[:60] or "image"
            out = Path("outputs") / f"{stem}-{backbone}-{guidance}"
        config = image_preset_config(preset, backbone, guidance)
        config.image, config.seed, config.out = str(image), seed, str(out)
        config.prompt = prompt if prompt is not None else ""
        if prompt is not None and not prompt.strip():
            raise UserError("the prompt is empty (leave --prompt out to have the object named)")
        apply_flags(config, prior=prior, steps=steps, cfg=cfg, device=device)
    config = apply_sets(config, set_)  # also on --resume, so that a contradiction is listed rather than ignored
    with progress_bar(f"image {config.backbone} {config.guidance}", config.steps, enabled=not quiet) as bar:
        metrics = run_image_to_3d(config, resume=resume, progress=bar)
    ref = metrics["image_to_3d"]["reference_view"]
    line = f"wrote {out} in {metrics['seconds']:.0f} s ({config.prompt!r}); reference view PSNR {ref['psnr']:.1f}, SSIM {ref['ssim']:.2f}"
    truth = metrics.get("ground_truth")
    if truth:
        line += (f"; novel views against the truth: PSNR {truth['psnr']:.1f}, IoU {truth['iou']:.2f}, "
                 f"recognised in {truth['recognized_views']}/{truth['n_views']}")
    typer.echo(line)
