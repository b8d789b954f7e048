"""The speed benchmark: time and peak memory of one guidance step of each method at identical settings.

One step is what the generate loop does besides rendering: encode the images (VAE for a latent prior), the
guidance's UNet passes, the backward of loss_distill + loss_learned into the images, and the optimiser step of the
method's learnable part (embedding or LoRA). Every method sees the same images, cameras, timestep t and noise
(a generator seeded by the iteration), in ONE process, and the methods are INTERLEAVED: each iteration runs
every method once, starting from a rotating position, so drifts of the machine (other jobs, clocks, caches)
spread over all methods alike. Methods that add a LoRA adapter get their own copy of the UNet, so that an
adapter idling at scale 0 does not slow the others down.

Memory (memory.py): the peak extra memory of one step, measured after all timings.

On CUDA a second table uses an SD-2.1-shaped prior (the true UNet and VAE configs with random weights, fp16,
512² images → 64² latents) at batch 1 and 4: the cost of the methods at the paper's scale.
"""

from __future__ import annotations

import copy
import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..errors import UserError
from .hardware import hardware_info, hardware_line, prior_line
from .memory import memory_methods, sync

METHODS = ("sds", "csd", "lods-embedding", "lods-embedding+shared_draw", "lods-lora", "lods-lora+shared_draw", "vsd",
           "ism", "sdi", "nfsd", "asd")


@dataclass
class SpeedConfig:
    prior: str | None = None  # None: the embedded prior
    device: str = "cpu"
    steps: int = 20  # timed iterations per method (after warm-up)
    warmup: int = 3
    size: int = 64  # rendered image size fed to the guidance (resized to the prior's size, as in generate)
    batch: int = 4  # views per step
    methods: list = field(default_factory=lambda: list(METHODS))
    timestep: int = 500
    threads: int | None = None  # torch CPU threads (None: torch's default)
    memory: bool = True
    sd21: bool | None = None  # the SD-2.1-shaped table (None: on CUDA only)
    sd21_batches: list = field(default_factory=lambda: [1, 4])
    sd21_size: int = 512
    sd21_folder: str | None = None  # an existing (random-weight) SD-2.1-shaped folder; None: build one in a temp dir
    out: str | None = None
    command: str = ""

    def validate(self) -> None:
        from ..guidance import split_method

        if self.steps < 1 or self.warmup < 0:
            raise UserError("--steps must be at least 1 and --warmup at least 0")
        if self.size < 8 or self.batch < 1:
            raise UserError("--size must be at least 8 and --batch at least 1")
        if not self.methods:
            raise UserError("--methods is empty")
        for m in self.methods:
            split_method(m)
        if not 0 <= self.timestep < 1000:
            raise UserError("--timestep must lie in 0..999")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA device is available")
        if self.threads is not None and self.threads < 1:
            raise UserError("--threads must be at least 1")


# ---------------------------------------------------------------------------------------------- setup
def clone_prior(prior):
    """The same prior with its own copy of the UNet (the text encoder and VAE are shared, frozen)."""
    from ..priors.prior import Prior

    return Prior(copy.deepcopy(prior.unet), prior.text_encoder, prior.tokenizer, prior.scheduler, prior.vae,
                 prior.extra, source=prior.source)


def speed_prompt(prior) -> str:
    return "a red cube"


class MethodRunner:
    """One method's guidance (and optimiser of its learnable part) on a prior."""

    def __init__(self, name: str, prior, prompt: str):
        from ..guidance import apply_switches, build_guidance, split_method
        from ..guidance.base import GuidanceConfig

        self.name = name
        self.prior = prior
        method, switches = split_method(name)
        self.guidance = build_guidance(method, prior, prompt, apply_switches(GuidanceConfig(), switches))
        groups = self.guidance.param_groups()
        self.optimizer = torch.optim.Adam(groups) if groups else None
        self.learned_params = sum(p.numel() for g in groups for p in g["params"])

    def step(self, images: torch.Tensor, cameras, t: torch.Tensor, seed: int) -> None:
        x = images.detach().clone().requires_grad_(True)
        gen = torch.Generator(device=x.device).manual_seed(seed)
        losses = self.guidance(x, cameras, 0, t=t, generator=gen)
        total = sum(v for k, v in losses.items() if k.startswith("loss_"))
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.optimizer is not None:
            self.optimizer.step()


def build_runners(prior, methods: list[str]) -> tuple[dict, dict]:
    """Runners by method; errors (e.g. a method the prior cannot run) by method."""
    from ..guidance import guidance_class, split_method

    runners, errors = {}, {}
    prompt = speed_prompt(prior)
    for m in methods:
        try:
            adapter = guidance_class(split_method(m)[0]).adds_adapter  # a LoRA on the UNet: its own UNet copy
            runners[m] = MethodRunner(m, clone_prior(prior) if adapter else prior, prompt)
        except Exception as e:  # noqa: BLE001 - reported in the table
            errors[m] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:160] if str(e).strip() else ''}"
    return runners, errors


def inputs(device, size: int, batch: int, timestep: int, seed: int = 0):
    from ..render.cameras import CameraSamplerConfig, sample_cameras

    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, size, size, generator=gen).to(device)
    cameras = sample_cameras(CameraSamplerConfig(views_per_step=batch), generator=gen).to(device)
    t = torch.full((batch,), int(timestep), dtype=torch.long, device=device)
    return images, cameras, t


# ---------------------------------------------------------------------------------------------- timing
def time_methods(runners: dict, errors: dict, device, size: int, batch: int, steps: int, warmup: int, timestep: int,
                 progress=None) -> dict[str, list[float]]:
    """Seconds per step of every runner, interleaved round-robin with a rotating start."""
    images, cameras, t = inputs(device, size, batch, timestep)
    names = list(runners)
    times: dict[str, list[float]] = {m: [] for m in names}
    for i in range(warmup + steps):
        k = i % max(1, len(names))
        for m in names[k:] + names[:k]:
            if m in errors:
                continue
            try:
                sync(device)
                t0 = time.perf_counter()
                runners[m].step(images, cameras, t, seed=i)
                sync(device)
                dt = time.perf_counter() - t0
            except Exception as e:  # noqa: BLE001 - a failing method is reported, the others go on
                errors[m] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:160] if str(e).strip() else ''}"
                continue
            if i >= warmup:
                times[m].append(dt)
        if progress is not None:
            progress(i + 1, warmup + steps)
    return times


# ---------------------------------------------------------------------------------------------- driver
def _section_stats(times: dict, peaks: dict, errors: dict, runners: dict, methods: list[str]) -> dict:
    out = {}
    for m in methods:
        entry: dict = {}
        ts = times.get(m) or []
        if ts:
            q = statistics.quantiles(ts, n=4) if len(ts) > 1 else [ts[0]] * 3
            entry |= {"median_ms": 1000 * statistics.median(ts), "q1_ms": 1000 * q[0], "q3_ms": 1000 * q[2],
                      "n": len(ts), "times_ms": [round(1000 * x, 3) for x in ts]}
        if m in peaks:
            entry["peak_mb"] = peaks[m] / 2**20
        if m in runners:
            entry["learned_params"] = runners[m].learned_params
        if m in errors:
            entry["error"] = errors[m]
        out[m] = entry
    base, vsd = out.get("sds", {}), out.get("vsd", {})
    for m, e in out.items():
        if "median_ms" in e and base.get("median_ms"):
            e["time_ratio"] = e["median_ms"] / base["median_ms"]
        if "median_ms" in e and vsd.get("median_ms"):
            e["time_ratio_vsd"] = e["median_ms"] / vsd["median_ms"]
        if "peak_mb" in e and base.get("peak_mb"):
            e["memory_ratio"] = e["peak_mb"] / base["peak_mb"]
    return out


def _prior_label(prior, source_label: str) -> str:
    kind = f"latent {prior.latent_size}² × {prior.latent_channels}" if prior.is_latent else f"pixel {prior.image_size}²"
    params = sum(p.numel() for p in prior.unet.parameters()) / 1e6
    return f"{source_label} ({kind}, UNet {params:.1f}M parameters, {str(prior.dtype).replace('torch.', '')})"


def run_speed_bench(cfg: SpeedConfig, echo=print, progress=None) -> dict:
    """Measure, print the tables, write OUT/speed.json and OUT/speed.md when `cfg.out` is set."""
    import datetime as _dt

    from ..priors.prior import Prior

    cfg.validate()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    started = _dt.datetime.now(_dt.timezone.utc)
    result = {"command": cfg.command, "date": started.strftime("%Y-%m-%d %H:%M UTC"), "hardware": hardware_info(cfg.device),
              "torch_threads": torch.get_num_threads(), "config": asdict(cfg), "sections": []}
    plan = []  # (label, prior, runners, errors, size, batch)
    prior = Prior.load(cfg.prior, device=device)
    runners, errors = build_runners(prior, cfg.methods)
    plan.append((_prior_label(prior, prior_line(cfg.prior)), prior, runners, errors, cfg.size, cfg.batch))
    want_sd21 = cfg.sd21 if cfg.sd21 is not None else device.type == "cuda"
    tmp = None
    try:
        if want_sd21:
            folder = cfg.sd21_folder
            if folder is None:
                from ..priors.tiny_sd import build_tiny_sd

                tmp = tempfile.TemporaryDirectory(prefix="lods-sd21-")
                echo("building an SD-2.1-shaped prior with random weights (UNet 866M parameters) ...")
                folder = build_tiny_sd(Path(tmp.name) / "sd21", latent=True, sd21=True)
            sd = Prior.load(str(folder), device=device)
            sd_runners, sd_errors = build_runners(sd, cfg.methods)
            label = _prior_label(sd, "SD-2.1-shaped prior, random weights" if cfg.sd21_folder is None else f"`{cfg.sd21_folder}`")
            for b in cfg.sd21_batches:
                plan.append((label, sd, sd_runners, sd_errors, cfg.sd21_size, int(b)))
        timed = []
        for label, p, rs, errs, size, batch in plan:
            times = time_methods(rs, errs, device, size, batch, cfg.steps, cfg.warmup, cfg.timestep, progress)
            timed.append(times)
        for (label, p, rs, errs, size, batch), times in zip(plan, timed):
            peaks, how = (memory_methods(rs, errs, device, *inputs(device, size, batch, cfg.timestep)) if cfg.memory
                          else ({}, "not measured"))
            result["sections"].append({
                "prior": label, "image_size": size, "model_size": p.image_size, "batch": batch, "timestep": cfg.timestep,
                "steps": cfg.steps, "warmup": cfg.warmup, "memory_method": how,
                "methods": _section_stats(times, peaks, errs, rs, cfg.methods),
            })
    finally:
        if tmp is not None:
            tmp.cleanup()
    text = render_speed(result, hardware_line(result["hardware"]))
    echo(text)
    if cfg.out:
        from ..utils.io import atomic_write_json, atomic_write_text

        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "speed.json", result)
        atomic_write_text(out / "speed.md", text + "\n")
    return result


def render_speed(result: dict, hardware: str) -> str:
    lines = ["# Speed: one guidance step per method", "",
             f"- Command: `{result['command'] or '(called from Python)'}`",
             f"- Date: {result['date']}",
             f"- Hardware: {hardware}; {result['torch_threads']} torch thread(s)", ""]
    for s in result["sections"]:
        lines += [f"## {s['prior']}", "",
                  f"Renders {s['image_size']}² (the prior sees {s['model_size']}²), batch {s['batch']}, t = {s['timestep']}; "
                  f"median over {s['steps']} steps after {s['warmup']} warm-up, methods interleaved in one process. "
                  f"Memory: {s['memory_method']}.", "",
                  "| method | ms / step (median) | IQR (ms) | × SDS time | × VSD time | peak step memory (MiB) | × SDS memory | learned parameters |",
                  "|---|---|---|---|---|---|---|---|"]
        for m, e in s["methods"].items():
            if "median_ms" not in e:
                lines.append(f"| {m} | failed: {e.get('error', 'no measurement')} | | | | | | |")
                continue
            mem = f"{e['peak_mb']:.1f}" if "peak_mb" in e else "–"
            time_ratio = f"{e['time_ratio']:.2f}" if "time_ratio" in e else "–"
            vsd_ratio = f"{e['time_ratio_vsd']:.2f}" if "time_ratio_vsd" in e else "–"
            mem_ratio = f"{e['memory_ratio']:.2f}" if "memory_ratio" in e else "–"
            lines.append(f"| {m} | {e['median_ms']:.1f} | {e['q1_ms']:.1f}–{e['q3_ms']:.1f} | {time_ratio} | {vsd_ratio} | "
                         f"{mem} | {mem_ratio} | {e.get('learned_params', 0):,} |")
        lines.append("")
    return "\n".join(lines)


def load_speed(path) -> dict:
    return json.loads(Path(path).read_text())
