"""`lods bench quality|cfg|speed`: the benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import Interrupted, UserError
from .common import PRIOR_HELP, check_device

METHODS_HELP = "Comma-separated methods: sds, csd, lods-embedding, lods-lora, vsd, ism, sdi, nfsd, asd."
BACKEND_HELP = "local (worker processes on this machine) or ray (a Ray task per run; pip install 'lods[ray]')."
RAY_ADDRESS_HELP = "--backend ray: the cluster to join ('auto', or HOST:PORT; default: start a local Ray)."
GPUS_HELP = "--backend ray on CUDA: the GPU fraction each run asks for."

app = typer.Typer(no_args_is_help=True, help="Benchmarks: quality on the world, speed, the CFG sweep, the guidance gap.")


def _scales(text: str) -> list[float]:
    from ..bench.stats import INF_CFG

    out = []
    for item in (s.strip().lower() for s in text.split(",") if s.strip()):
        if item in ("inf", "infinity", "∞"):
            out.append(INF_CFG)
            continue
        try:
            value = float(item)
        except ValueError:
            raise UserError(f"--scales: {item!r} is not a number (or inf)") from None
        if not value > 0:
            raise UserError(f"--scales: CFG scales must be positive, got {item}")
        out.append(min(value, INF_CFG))
    if not out:
        raise UserError("--scales is empty")
    return list(dict.fromkeys(out))


def _ray_options(backend: str, ray_address: str | None, gpus_per_run: float) -> dict:
    """The Ray flags for the recorded command line (left out at their defaults)."""
    return dict(backend=None if backend == "local" else backend, ray_address=ray_address,
                gpus_per_run=None if gpus_per_run == 1.0 else gpus_per_run)


def _run_quality_like(bc, name: str, options: dict, quiet: bool) -> None:
    from ..bench.quality import run_bench
    from ..bench.report import command_line, echo_row

    bc.command = command_line(name, options)
    on_row = None if quiet else (lambda row, done, total: typer.echo(echo_row(row, done, total), err=True))
    try:
        result = run_bench(bc, on_row=on_row, message=lambda text: typer.echo(f"lods: {text}", err=True))
    except (KeyboardInterrupt, Interrupted):
        typer.echo("lods: interrupted; rerun the same command to continue (finished runs are kept, unfinished ones "
                   "resume from their last checkpoint)", err=True)
        raise typer.Exit(130) from None
    failed = sum(1 for r in result["rows"] if str(r["status"]).startswith("failed"))
    typer.echo(f"wrote {result['csv_path']} ({len(result['rows'])} runs, {failed} failed), {result['summary_path']}, "
               f"{len(result['plots'])} plots in {Path(bc.out) / 'plots'}")


@app.command("quality")
def quality(
    suite: str = typer.Option("world", help="world (the procedural world, scored against its 3D truth) or t3bench "
                                            "(T3Bench's 300 prompts; needs --prior with a Stable Diffusion model)."),
    methods: str = typer.Option("sds,lods-embedding", help=METHODS_HELP),
    backbones: str = typer.Option("gs", help="Comma-separated backbones: gs, nerf."),
    seeds: int = typer.Option(3, help="Seeds per prompt (0 .. N-1)."),
    prompts_per_category: Optional[int] = typer.Option(None, help="Prompts per category (default: 10 for world, all 100 for t3bench)."),
    categories: str = typer.Option("single,surroundings,multi", help="Comma-separated categories."),
    steps: Optional[int] = typer.Option(None, help="Optimisation steps per run (default: the preset's)."),
    preset: Optional[str] = typer.Option(None, help="fast or paper (default: fast for world, paper for t3bench)."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="One CFG scale for every method (default: each method's preset scale)."),
    render_size: Optional[int] = typer.Option(None, help="Render size during optimisation (default: the preset's)."),
    num_points: Optional[int] = typer.Option(None, help="Initial number of Gaussians (gs; default: the preset's)."),
    workers: int = typer.Option(1, help="Runs in parallel (worker processes)."),
    threads: int = typer.Option(1, help="torch threads per run."),
    prior: Optional[str] = typer.Option(None, help=PRIOR_HELP),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: the preset's)."),
    out: Path = typer.Option(Path("outputs/bench-quality"), help="Output folder (rerun the same command to resume)."),
    imagereward_dir: Optional[Path] = typer.Option(None, help="Folder with ImageReward.pt and med_config.json (default: ~/.cache/ImageReward)."),
    quiet: bool = typer.Option(False, help="No line per finished run."),
    backend: str = typer.Option("local", help=BACKEND_HELP),
    ray_address: Optional[str] = typer.Option(None, help=RAY_ADDRESS_HELP),
    gpus_per_run: float = typer.Option(1.0, help=GPUS_HELP),
):
    """Quality: every method × backbone × seed × prompt of a suite; writes results.csv, summary.md and plots/.

    Each run has its own folder OUT/runs/<method>-<backbone>-s<seed>/<prompt>; rerunning the same command skips finished runs and resumes unfinished ones. --suite world scores every asset against the world's truth (multi-view PSNR, SSIM, IoU, the judge's R@1 and recognised views, saturation error) and needs the embedded prior.

    --suite t3bench is the path to the paper's numbers: T3Bench's 300 prompts (single, surroundings, multi) with a Stable Diffusion prior (--prior, e.g. stabilityai/stable-diffusion-2-1-base, on CUDA with the paper preset), scored by ImageReward (mean over the evaluation views) when the ImageReward package and its weights are installed locally; T3Bench's GPT-4 alignment score is not computed.
    """  # noqa: E501

    from ..bench.config import BenchConfig, parse_list

    bc = BenchConfig(suite=suite, methods=parse_list(methods, "--methods"), backbones=parse_list(backbones, "--backbones"),
                     seeds=seeds, prompts_per_category=prompts_per_category, categories=parse_list(categories, "--categories"),
                     steps=steps, cfg_scales=[cfg], preset=preset, prior=prior, device=device, workers=workers,
                     render_size=render_size, num_points=num_points, threads=threads,
                     out=str(out), imagereward_dir=str(imagereward_dir) if imagereward_dir else None,
                     backend=backend, ray_address=ray_address, gpus_per_run=gpus_per_run)
    options = dict(suite=suite, methods=methods, backbones=backbones, seeds=seeds, prompts_per_category=prompts_per_category,
                   categories=categories, steps=steps, preset=preset, cfg=cfg, render_size=render_size, num_points=num_points,
                   workers=workers, threads=threads, prior=prior, device=device,
                   out=out, imagereward_dir=imagereward_dir, **_ray_options(backend, ray_address, gpus_per_run))
    _run_quality_like(bc, "quality", options, quiet)

@app.command("cfg")
def cfg_sweep(
    prompts_per_category: int = typer.Option(10, help="Prompts per category."),
    seeds: int = typer.Option(3, help="Seeds per prompt (0 .. N-1)."),
    steps: Optional[int] = typer.Option(None, help="Optimisation steps per run (default: the fast preset's)."),
    scales: str = typer.Option("30,100,1000,inf", help="Comma-separated CFG scales; inf means 1e6."),
    render_size: Optional[int] = typer.Option(None, help="Render size during optimisation (default: the preset's)."),
    num_points: Optional[int] = typer.Option(None, help="Initial number of Gaussians (gs; default: the preset's)."),
    methods: str = typer.Option("sds,lods-embedding", help=METHODS_HELP),
    categories: str = typer.Option("single", help="Comma-separated categories of the world suite."),
    backbones: str = typer.Option("gs", help="Comma-separated backbones: gs, nerf."),
    workers: int = typer.Option(1, help="Runs in parallel (worker processes)."),
    threads: int = typer.Option(1, help="torch threads per run."),
    prior: Optional[str] = typer.Option(None, help=PRIOR_HELP),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: cpu)."),
    out: Path = typer.Option(Path("outputs/bench-cfg"), help="Output folder (rerun the same command to resume)."),
    quiet: bool = typer.Option(False, help="No line per finished run."),
    backend: str = typer.Option("local", help=BACKEND_HELP),
    ray_address: Optional[str] = typer.Option(None, help=RAY_ADDRESS_HELP),
    gpus_per_run: float = typer.Option(1.0, help=GPUS_HELP),
):
    """CFG sweep: SDS against LODS-embedding at s = 30, 100, 1000 and ∞ (1e6) on the world suite (single objects by default); writes results.csv (with a cfg column), summary.md and plots/."""  # noqa: E501
    from ..bench.cfg import cfg_bench_config
    from ..bench.config import parse_list

    bc = cfg_bench_config(methods=parse_list(methods, "--methods"), backbones=parse_list(backbones, "--backbones"),
                          seeds=seeds, prompts_per_category=prompts_per_category,
                          categories=parse_list(categories, "--categories"), steps=steps, cfg_scales=_scales(scales),
                          prior=prior, device=device, workers=workers, out=str(out), render_size=render_size,
                          num_points=num_points, threads=threads, backend=backend, ray_address=ray_address,
                          gpus_per_run=gpus_per_run)
    options = dict(prompts_per_category=prompts_per_category, seeds=seeds, steps=steps, scales=scales,
                   render_size=render_size, num_points=num_points, methods=methods,
                   categories=categories, backbones=backbones, workers=workers, threads=threads, prior=prior,
                   device=device, out=out, **_ray_options(backend, ray_address, gpus_per_run))
    _run_quality_like(bc, "cfg", options, quiet)

@app.command("speed")
def speed(
    prior: Optional[str] = typer.Option(None, help=PRIOR_HELP),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    steps: int = typer.Option(20, help="Timed steps per method (median), after the warm-up."),
    warmup: int = typer.Option(3, help="Untimed steps per method first."),
    size: int = typer.Option(64, help="Rendered image size fed to the guidance (resized to the prior's size)."),
    batch: int = typer.Option(4, help="Views per step."),
    methods: Optional[str] = typer.Option(None, help=METHODS_HELP + " A method may carry switches: "
                                          "lods-embedding+shared_draw. Default: every method and the shared-draw rows."),
    timestep: int = typer.Option(500, help="The diffusion timestep t of every step."),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads (default: torch's)."),
    sd21: Optional[bool] = typer.Option(None, "--sd21/--no-sd21", help="Also time an SD-2.1-shaped prior (random weights, "
                                        "512² → 64² latents, batch 1 and 4); default: on CUDA only."),
    memory: bool = typer.Option(True, "--memory/--no-memory", help="Measure the peak memory of a step."),
    out: Optional[Path] = typer.Option(None, help="Also write OUT/speed.json and OUT/speed.md."),
):
    """Speed: median time and peak memory of one guidance step per method at identical settings (same images, cameras, t, noise), interleaved in one process; prints a table with ratios to SDS."""  # noqa: E501
    from ..bench.config import parse_list
    from ..bench.report import command_line
    from ..bench.speed import METHODS, SpeedConfig, run_speed_bench

    methods = methods or ",".join(METHODS)
    options = dict(prior=prior, device=device, steps=steps, warmup=warmup, size=size, batch=batch, methods=methods,
                   timestep=timestep, threads=threads, out=out)
    command = command_line("speed", options)
    if sd21 is not None:
        command += " --sd21" if sd21 else " --no-sd21"
    if not memory:
        command += " --no-memory"
    cfg = SpeedConfig(prior=prior, device=check_device(device), steps=steps, warmup=warmup, size=size, batch=batch,
                      methods=parse_list(methods, "--methods"), timestep=timestep, threads=threads, sd21=sd21,
                      memory=memory, out=str(out) if out else None, command=command)
    run_speed_bench(cfg, echo=typer.echo)
