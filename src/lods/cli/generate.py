"""`lods generate`: text-to-3D, one prompt (or a file of prompts: batch.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import apply_sets
from ..errors import UserError
from .common import PRIOR_HELP, QUIET_HELP, apply_flags, fit_phrase, given, not_started


def generate(
    ctx: typer.Context,
    prompt: Optional[str] = typer.Argument(None, help="Text prompt (a world caption for the embedded prior, e.g. 'a red cube')."),
    backbone: str = typer.Option("gs", help="gs (3D Gaussians) or nerf (radiance field)."),
    guidance: str = typer.Option("lods-embedding", help="sds, csd, lods-embedding, lods-lora, vsd, ism, sdi, nfsd or asd."),
    prior: Optional[str] = typer.Option(None, help=PRIOR_HELP),
    preset: str = typer.Option("fast", help="fast (CPU, embedded prior) or paper (docs/algorithm.md's settings, CUDA + SD 2.1)."),
    steps: Optional[int] = typer.Option(None, help="Optimisation steps (default: the preset's)."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="CFG scale (default: the preset's for the guidance)."),
    seed: int = typer.Option(0, help="Random seed."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: the preset's)."),
    out: Optional[Path] = typer.Option(None, help="Run folder (default: outputs/<prompt>-<backbone>-<guidance>)."),
    resume: bool = typer.Option(False, help="Continue the run in OUT from its last checkpoint; flags given must match "
                                "the run's (only --steps may change: a larger value extends a finished run)."),
    mesh: Optional[str] = typer.Option(None, help="vertex (vertex colours, the default) or textured (UV-unwrapped, "
                                       "baked texture; also mesh.obj/.mtl/.png)."),
    mesh_faces: Optional[int] = typer.Option(None, help="Decimate the mesh to at most this many faces."),
    view: bool = typer.Option(False, "--view", help="Open `lods view` on the run; it refreshes as checkpoints land."),
    init_ply: Optional[Path] = typer.Option(None, help="gs: initialise the Gaussians from this point-cloud or splat ply."),
    init_ply_scale: float = typer.Option(1.0, help="Multiply --init-ply's positions by this (the reference: 1.6 for Shap-E)."),
    shared_draw: bool = typer.Option(False, help="LODS: the learned branch's loss reuses the distillation draw (t, ε)."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override any config field: --set gaussians.num_points=2000."),
    quiet: bool = typer.Option(False, help=QUIET_HELP),
    # a batch of prompts (batch.py)
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="A file of prompts, one a line (# comments), instead of "
                                           "PROMPT: the prior loads once, each prompt gets OUT/<prompt>/, finished ones are "
                                           "skipped on a rerun; OUT/results.csv and OUT/summary.md list them all."),
    workers: int = typer.Option(1, help="--prompts: prompts run in parallel (CPU worker processes)."),
    backend: str = typer.Option("local", help="--prompts: local (this machine) or ray (a Ray task per prompt)."),
    ray_address: Optional[str] = typer.Option(None, help="--backend ray: the cluster to join ('auto', or HOST:PORT; "
                                              "default: start a local Ray)."),
    gpus_per_run: float = typer.Option(1.0, help="--backend ray on CUDA: the GPU fraction each prompt asks for."),
):
    """Text-to-3D: optimise 3D Gaussians or a NeRF; writes model.ply, mesh.glb, turntable, views.png, metrics.json."""
    from ..pipelines.presets import preset_config
    from ..pipelines.run_config import load_run_config
    from ..pipelines.text_to_3d import run_generate
    from ..utils.progress import progress_bar

    if (prompt is None) == (prompts is None):
        raise UserError("give either a PROMPT or --prompts FILE")
    if prompts is not None:
        from .batch import generate_batch

        flags = dict(backbone=backbone, guidance=guidance, prior=prior, preset=preset, steps=steps, cfg=cfg, seed=seed,
                     device=device, resume=resume, mesh=mesh, mesh_faces=mesh_faces, view=view, init_ply=init_ply,
                     init_ply_scale=init_ply_scale, shared_draw=shared_draw, set_=set_)
        return generate_batch(prompts, flags, out, workers, backend, ray_address, gpus_per_run, quiet)

    if out is None:
        slug = "-".join("".join(ch if ch.isalnum() else " " for ch in prompt.lower()).split())[:60] or "run"
        out = Path("outputs") / f"{slug}-{backbone}-{guidance}"
    if resume and not_started(out):
        resume = False  # stopped before it wrote its config: the same command starts it over
    if resume:
        config = load_run_config(out)
        if getattr(config, "task", None) == "image-to-3d":
            raise UserError(f"{out} is an image-to-3d run; resume it with `lods image-to-3d --resume --out {out}`")
        config.out = str(out)  # the folder given, wherever the run was first written
        # flags given on the command line are checked against the run (run_generate lists any difference)
        config.prompt = prompt
        for name, value in (("backbone", backbone), ("guidance", guidance), ("preset", preset), ("seed", seed)):
            if given(ctx, name):
                setattr(config, name, value)
        apply_flags(config, prior=prior, steps=steps, cfg=cfg, device=device)
    else:
        config = preset_config(preset, backbone, guidance)
        config.prompt, config.seed, config.out = prompt, seed, str(out)
        apply_flags(config, prior=prior, steps=steps, cfg=cfg, device=device)
    # also on --resume, so that a contradiction is listed rather than ignored
    if init_ply is not None:
        config.init_ply = str(init_ply)
    if given(ctx, "init_ply_scale"):
        config.init_ply_scale = init_ply_scale
    if shared_draw:
        config.guidance_config.shared_draw = True
    config = apply_sets(config, set_)
    if mesh is not None:
        config.export.mesh = mesh
    if mesh_faces is not None:
        config.export.mesh_max_faces = mesh_faces
    with progress_bar(f"{config.backbone} {config.guidance}", config.steps, enabled=not quiet) as bar:
        if view:
            from .view import live_view

            on_step, stop_view = live_view(out)
            metrics = run_generate(config, resume=resume, progress=lambda *a: (bar(*a), on_step(*a)))
        else:
            metrics = run_generate(config, resume=resume, progress=bar)
    line = f"wrote {out} in {metrics['seconds']:.0f} s"
    truth = metrics.get("ground_truth")
    if truth:
        line += (f"; judge recognises the prompt in {truth['recognized_views']}/{truth['n_views']} views, "
                 f"IoU {truth['iou']:.2f}, PSNR {truth['psnr']:.1f} dB")
    fit = metrics.get("learned_fit")
    if fit is not None:
        line += "; " + fit_phrase(fit)
    typer.echo(line)
    if view:
        from .view import keep_serving

        keep_serving(stop_view)
