"""The `lods` command: a thin layer over the pipelines' typed configs."""

from __future__ import annotations

import errno
import json
import math
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from typer import Abort

try:  # typer >= 0.2x vendors click
    from typer._click.core import ParameterSource
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older typer on click
    from click.core import ParameterSource
    from click.exceptions import UsageError

from .config import apply_sets  # noqa: F401  (cli_batch and cli_image take it from here)
from .errors import LodsError, UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Text- and image-to-3D by score distillation (LODS, SDS, CSD, VSD) on 3D Gaussians and NeRF.",
)
prior_app = typer.Typer(no_args_is_help=True, help="Train and sample the embedded prior.")
judge_app = typer.Typer(no_args_is_help=True, help="Train the world's classifier (the judge).")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks: quality on the world, speed, the CFG sweep.")
app.add_typer(prior_app, name="prior")
app.add_typer(judge_app, name="judge")
app.add_typer(bench_app, name="bench")

PRIOR_HELP = "Diffusers folder or hub id of the prior (default: the embedded prior)."
DEVICE_HELP = "cpu or cuda."
QUIET_HELP = "No progress bar."


def _device(device: str) -> str:
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"unknown device {device!r}; choose cpu or cuda")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA device is available")
    return device


def not_started(out: Path) -> bool:
    """A folder a run opened but was stopped in before it wrote config.yaml (or a checkpoint)."""
    from .runs import CHECKPOINT, RunDir

    return out.is_dir() and not (out / "config.yaml").exists() and not (out / CHECKPOINT).exists() \
        and RunDir(out, "").contents() <= {".lock", "checkpoints"}


def given(ctx, name: str) -> bool:
    """Whether option `name` was given (command line or environment), not left at its default."""
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def apply_flags(config, prior=None, steps=None, cfg=None, device=None) -> None:
    """Command-line flags that override a preset's config (None: keep the preset's value)."""
    if prior is not None:
        config.prior = prior
    if steps is not None:
        config.steps = steps
    if cfg is not None:
        config.guidance_config.guidance_scale = cfg
    if device is not None:
        config.device = _device(device)


@app.command()
def distill2d(
    prompt: str = typer.Argument(..., help="Text prompt."),
    guidance: str = typer.Option("lods-embedding", help="sds, csd, lods-embedding, lods-lora, vsd, ism, sdi, nfsd or asd."),
    prior: Optional[str] = typer.Option(None, help=PRIOR_HELP),
    steps: int = typer.Option(500, help="Optimisation steps."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="CFG scale (default: the method's default for the prior)."),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    out: Path = typer.Option(Path("outputs/distill2d"), help="Output folder."),
    quiet: bool = typer.Option(False, help=QUIET_HELP),
):
    """Optimise one image with a guidance (the 2D playground): writes image.png, metrics.json, config.yaml, loss.png."""
    from .pipelines.distill2d import Distill2DConfig, run_distill2d
    from .progress import progress_bar

    config = Distill2DConfig(prompt=prompt, guidance=guidance, prior=prior, steps=steps, guidance_scale=cfg, seed=seed,
                             device=_device(device), out=str(out))
    with progress_bar(f"distill2d {guidance}", steps, enabled=not quiet) as bar:
        metrics = run_distill2d(config, progress=bar)
    typer.echo(f"wrote {out}/image.png (final loss {metrics.get('final_loss', float('nan')):.4g})")


@prior_app.command("train")
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
    install: bool = typer.Option(False, help="Copy the exported prior into the package as the new default."),
    init_from: Optional[Path] = typer.Option(None, help="Warm-start from this exported prior folder (e.g. the shipped one)."),
    warmup_steps: int = typer.Option(200, help="Linear learning-rate warm-up steps."),
    vary: bool = typer.Option(True, help="Render the training set with the world's shade and light variance."),
    attribute_dropout: bool = typer.Option(True, help="Drop colours / shapes from captions at the world's rates."),
    quiet: bool = typer.Option(False, help=QUIET_HELP),
):
    """Train (or resume) the embedded prior on renders of the world."""
    from .pipelines.train_prior import TrainPriorConfig, train_prior
    from .progress import progress_bar

    config = TrainPriorConfig(out=str(out), steps=steps, batch_size=batch_size, lr=lr, data_scenes=data_scenes, seed=seed,
                              checkpoint_every=checkpoint_every, time_limit_min=time_limit, workers=workers,
                              init_from=str(init_from) if init_from else "", warmup_steps=warmup_steps, vary=vary,
                              attribute_dropout=attribute_dropout)
    if init_from is not None and not (init_from / "unet").is_dir():
        raise UserError(f"--init-from {init_from}: not a prior folder (no unet/ inside)")
    try:
        config.validate()
    except ValueError as e:
        raise UserError(str(e)) from None
    with progress_bar("prior", steps, enabled=not quiet) as bar:
        metrics = train_prior(config, progress=bar)
    typer.echo(f"step {metrics['step']}: loss {metrics['final_loss']:.4f}; prior in {out / 'prior'}")
    if install:
        from .priors.embedded import EMBEDDED_PRIOR_DIR, install_prior

        install_prior(out / "prior", EMBEDDED_PRIOR_DIR)
        typer.echo(f"installed as the default prior: {EMBEDDED_PRIOR_DIR}")


@prior_app.command("sample")
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
    from .priors.prior import Prior
    from .priors.sampling import sample_grid

    if n <= 0 or steps <= 0 or not 0 < cfg < math.inf:
        raise UserError(f"--n and --steps must be positive and --cfg positive and finite (got --cfg {cfg})")
    p = Prior.load(prior, device=_device(device))
    for text in prompts:
        p.check_prompt(text)
    sample_grid(p, prompts, out, cfg=cfg, n=n, steps=steps, seed=seed)
    typer.echo(f"wrote {out}")


@prior_app.command("eval")
def prior_eval(
    prior: Optional[str] = typer.Option(None, help=PRIOR_HELP),
    cfg: list[float] = typer.Option([5.0, 1.0], "--cfg", help="CFG scales to evaluate (repeat the option)."),
    n: int = typer.Option(2, help="Samples per prompt."),
    steps: int = typer.Option(25, help="DDIM steps."),
    seed: int = typer.Option(0),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    out: Optional[Path] = typer.Option(None, help="Write the figures as JSON here."),
):
    """The judge on the prior's samples: how often it draws the prompted shape, colour, context and relation."""

    from .evaluate.prior_eval import evaluate_prior
    from .priors.prior import Prior
    from .utils.io import atomic_write_json
    from .world.judge import Judge

    if n <= 0 or steps <= 0 or not all(0 < c < math.inf for c in cfg):
        raise UserError("--n and --steps must be positive and every --cfg positive and finite")
    p = Prior.load(prior, device=_device(device))
    if p.vocabulary is None:
        raise UserError("prior eval needs a world prior (its judge only knows the world)")
    result = evaluate_prior(p, Judge.load(), scales=tuple(cfg), n_per_prompt=n, steps=steps, seed=seed)
    if out is not None:
        atomic_write_json(out, result)
    typer.echo(json.dumps(result, indent=2))


@app.command()
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
    # a batch of prompts (cli_batch.py)
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
    from .pipelines.generate import load_run_config, preset_config, run_generate
    from .progress import progress_bar

    if (prompt is None) == (prompts is None):
        raise UserError("give either a PROMPT or --prompts FILE")
    if prompts is not None:
        from .cli_batch import generate_batch

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
            from .cli_view import live_view

            on_step, stop_view = live_view(out)
            metrics = run_generate(config, resume=resume, progress=lambda *a: (bar(*a), on_step(*a)))
        else:
            metrics = run_generate(config, resume=resume, progress=bar)
    line = f"wrote {out} in {metrics['seconds']:.0f} s"
    truth = metrics.get("ground_truth")
    if truth:
        line += (f"; judge recognises the prompt in {truth['recognized_views']}/{truth['n_views']} views, "
                 f"IoU {truth['iou']:.2f}, PSNR {truth['psnr']:.1f} dB")
    typer.echo(line)
    if view:
        from .cli_view import keep_serving

        keep_serving(stop_view)


@app.command("eval")
def eval_run(
    run_dir: Path = typer.Argument(..., help="A run folder written by `lods generate` or `lods image-to-3d`."),
):
    """Score a finished run against the world's 3D truth; prints and rewrites metrics.json's ground_truth."""

    from .pipelines.evaluate_run import evaluate_run

    result = evaluate_run(run_dir)
    if result.get("unfinished"):
        typer.echo(f"lods: warning: {run_dir} is unfinished; scored its checkpoint at step {result['checkpoint_step']} "
                   "(finish it with `lods generate ... --resume`)", err=True)
    typer.echo(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}, indent=2))


@judge_app.command("train")
def judge_train(
    out: Path = typer.Option(Path("runs/judge"), help="Output folder."),
    install: bool = typer.Option(False, help="Copy the trained judge into the package as the default."),
):
    """Train the world's classifier on ground-truth renders."""
    from .pipelines.train_judge import TrainJudgeConfig, train_judge

    result = train_judge(TrainJudgeConfig(out=str(out)))
    typer.echo(str(result))


@judge_app.command("eval")
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

    from .pipelines.train_judge import evaluate_judge, label_targets, render_scenes
    from .utils.io import atomic_write_json
    from .world.judge import SIZE, Judge

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


from . import cli_bench, cli_image, cli_view  # noqa: E402

cli_image.register(app)
cli_view.register(app)
cli_bench.register(bench_app)


def main() -> None:
    """Entry point: every failure is one line on stderr and an exit code (README: exit codes); no traceback."""
    sys.exit(run_main(sys.argv[1:]))


def run_main(argv: list[str]) -> int:
    threads = os.environ.get("LODS_THREADS")
    try:
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        code = app(argv, prog_name="lods", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except LodsError as e:
        return _fail(str(e), e.exit_code)
    except UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `lods` alone: the help was printed
            return 0
        where = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
        return _fail(" ".join(e.format_message().split()) + where, 2)
    except (KeyboardInterrupt, Abort):
        return _fail("interrupted", 130)
    except FileNotFoundError as e:
        return _fail(f"{e.strerror}: {e.filename}", 2)
    except OSError as e:
        return _fail(_os_error_line(e), 1)
    except MemoryError:
        return _fail("out of memory; try a smaller --steps / render size, or close other programs", 1)


def _fail(message: str, code: int) -> int:
    print(f"lods: error: {message}", file=sys.stderr)
    return code


def _os_error_line(e: OSError) -> str:
    """One line for an OSError: the environment, not the input (exit 1)."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device{f' writing {e.filename}' if e.filename else ''}; the last checkpoint and " \
               "earlier outputs are kept (free some space, then rerun with --resume)"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{e.strerror}: {e.filename}" if e.filename else str(e)
    return " ".join(str(e).split()) or type(e).__name__


if __name__ == "__main__":
    main()
