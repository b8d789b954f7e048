#!/usr/bin/env python3
"""The CUDA checks of the paper path, in one command, writing a report (report.md + report.json in --out).

    python scripts/gpu_check.py --out gpu-report            # on a CUDA machine, ≤ 8 minutes on one H100/H200
    python scripts/gpu_check.py --out /tmp/r --tiny         # tiny sizes on the CPU (the tests run this)

Sections (each records its own error and goes on; the report is rewritten after every section):
1. gsplat's CUDA rasterizer against our torch rasterizer (on the CPU) on the same scenes: the largest pixel
   difference, and one densification step's statistics from each backend's screen-space gradients;
2. `lods bench speed --device cuda --sd21`: ms per step and peak memory per method, SD-2.1-shaped UNet with random
   weights at 512², batch 1 and 4 (and the embedded prior);
3. the paper preset, 3DGS, LODS-embedding, on that SD-2.1-shaped prior for a few dozen steps: time per step, peak
   memory, and the projected time of the preset's 2500 steps;
4. the fp16 embedding gradient (scaled and unscaled) against fp32's on the SD-2.1-shaped prior;
5. `lods generate "a red cube"` end to end on CUDA with the embedded prior, beside the same command on the CPU.
The red-cube CPU run and gsplat's first-use CUDA compile start in the background at once; the rest waits for them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

REPORT: dict = {"sections": {}}


def save(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(REPORT, indent=2, default=str))
    (out / "report.md").write_text(render(REPORT))


def section(name: str, out: Path):
    """Decorator: run fn(), store its dict (or its error) under `name`, with its wall time; save the report."""

    def wrap(fn):
        t0 = time.time()
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - a failed check is a finding of the report, the others go on
            result = {"error": f"{type(e).__name__}: {str(e).strip()[:400]}", "traceback": traceback.format_exc()[-2000:]}
        result["wall_s"] = round(time.time() - t0, 1)
        REPORT["sections"][name] = result
        save(out)
        print(f"[gpu_check] {name}: {'error ' + result['error'] if 'error' in result else 'ok'} ({result['wall_s']} s)", flush=True)
        return result

    return wrap


# ---------------------------------------------------------------------------------------------- 1. rasterizers
def random_scene(n: int, seed: int, device):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) - 0.5) * 1.2
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1)
    scales = torch.exp(torch.empty(n, 3).uniform_(-4.5, -2.5, generator=g))
    opac = torch.empty(n).uniform_(0.1, 0.95, generator=g)
    colors = torch.rand(n, 3, generator=g)
    return [t.to(device) for t in (means, quats, scales, opac, colors)]


def compare_rasterizers(size: int, n: int, cuda: bool) -> dict:
    from lods.render.cameras import CameraSamplerConfig, sample_cameras
    from lods.render.splat_torch import rasterize_torch

    if not cuda:
        return {"skipped": "no CUDA device: gsplat runs on CUDA tensors only"}
    from lods.render.splat_gsplat import rasterize_gsplat

    rows = []
    for seed in range(3):
        scene = random_scene(n, seed, "cpu")
        cams = sample_cameras(CameraSamplerConfig(views_per_step=4), generator=torch.Generator().manual_seed(seed))
        viewmats, ks = torch.linalg.inv(cams.c2w), cams.intrinsics(size, size)
        bg = torch.ones(3)
        ref = rasterize_torch(*scene, viewmats, ks, size, size, background=bg)
        got = rasterize_gsplat(*[t.cuda() for t in scene], viewmats.cuda(), ks.cuda(), size, size, background=bg.cuda())
        rgb = (got["rgb"].cpu() - ref["rgb"]).abs()
        alpha = (got["alpha"].cpu() - ref["alpha"]).abs()
        rows.append({"seed": seed, "gaussians": n, "views": 4, "size": size, "max_rgb_diff": float(rgb.max()),
                     "mean_rgb_diff": float(rgb.mean()), "max_alpha_diff": float(alpha.max()),
                     "pixels_over_0.01": float((rgb.amax(1) > 0.01).float().mean())})
    return {"scenes": rows, "densify": densify_statistics(size)}


def densify_statistics(size: int) -> dict:
    """One densify step from the same scene and loss on each backend: clone / split / prune counts."""
    from lods.render.cameras import CameraSamplerConfig, sample_cameras
    from lods.scenes.gaussians import GaussiansConfig, GaussianScene

    out = {}
    for backend, device in (("torch", "cpu"), ("gsplat", "cuda")):
        torch.manual_seed(0)
        cfg = GaussiansConfig(num_points=2000, backend=backend, densify_from=0, densify_every=1, grad_threshold=2e-4)
        scene = GaussianScene(cfg, seed=0).to(device)
        cams = sample_cameras(CameraSamplerConfig(views_per_step=4), generator=torch.Generator().manual_seed(0)).to(device)
        target = torch.zeros(4, 3, size, size, device=device)
        target[:, 0] = 1.0
        r = scene.render(cams, size, background=torch.ones(4, 3, device=device))
        ((r["rgb"] - target) ** 2).mean().backward()
        scene.accumulate_grads(r)
        visible = int((scene.grad_count > 0).sum())
        mean_grad = float(scene.grad_accum.sum() / scene.grad_count.clamp_min(1).sum())
        out[backend] = {"visible": visible, "mean_screen_grad": mean_grad, **scene.densify_and_prune(None)}
    return out


# ---------------------------------------------------------------------------------------------- 3. the paper preset
def paper_preset_run(folder: str, device: str, steps: int, size: int | None, out: Path, backend: str = "auto") -> dict:
    import shutil

    from lods.pipelines.presets import preset_config
    from lods.pipelines.text_to_3d import run_generate

    cfg = preset_config("paper", "gs", "lods-embedding")
    full_steps = cfg.steps
    cfg.prior, cfg.device, cfg.steps, cfg.prompt = folder, device, steps, "a hamburger"
    cfg.out = str(out / "paper-gs-lods-embedding")
    cfg.export.turntable_frames, cfg.export.mesh_resolution, cfg.checkpoint_every = 4, 32, steps
    if size is not None:
        cfg.render_size = size
    cfg.gaussians = {**cfg.gaussians, "backend": backend}
    if device == "cpu":
        cfg.gaussians = {**cfg.gaussians, "num_points": 512}
    shutil.rmtree(cfg.out, ignore_errors=True)
    stamps = []

    def progress(step, total, logs):
        if device == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    metrics = run_generate(cfg, progress=progress)
    per_step = [b - a for a, b in zip([t0] + stamps[:-1], stamps)]
    steady = per_step[min(5, len(per_step) - 1):]
    median = statistics.median(steady)
    result = {"prior": "SD-2.1-shaped, random weights" if device == "cuda" else "tiny SD-shaped", "steps_run": steps,
              "render_size": cfg.render_size, "views": cfg.cameras.views_per_step,
              "median_step_s": median, "first_step_s": per_step[0],
              "projected_full_run_min": median * full_steps / 60, "full_steps": full_steps,
              "final_losses": metrics["final_losses"], "backend": cfg.gaussians.get("backend", "auto")}
    if device == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


# ---------------------------------------------------------------------------------------------- 5. the red cube
def red_cube_command(device: str, out: Path, tiny: bool, backend: str = "auto") -> list[str]:
    cmd = [sys.executable, "-m", "lods.cli", "generate", "a red cube", "--device", device, "--out", str(out), "--quiet"]
    if backend != "auto":
        cmd += ["--set", f"gaussians.backend={backend}"]
    if tiny:
        cmd += ["--steps", "2", "--set", "export.turntable_frames=2", "--set", "export.mesh_resolution=16",
                "--set", "gaussians.num_points=200"]
    return cmd


def read_red_cube(proc: subprocess.Popen, out: Path, log: Path, started: float) -> dict:
    rc = proc.wait()
    result = {"exit_code": rc, "wall_s_process": round(time.time() - started, 1)}
    if rc != 0:
        result["error"] = f"exit {rc}: {log.read_text()[-600:]}"
        return result
    m = json.loads((out / "metrics.json").read_text())
    result.update({"seconds": m["seconds"], "seconds_per_step": m["seconds_per_step"], "steps": m["steps"],
                   "final_losses": m["final_losses"]})
    truth = m.get("ground_truth") or {}
    result["ground_truth"] = {k: truth[k] for k in ("psnr", "ssim", "iou", "saturation_error", "recognized_views",
                                                       "n_views", "r_at_1") if k in truth}
    return result


# ---------------------------------------------------------------------------------------------- report
def render(report: dict) -> str:
    s = report["sections"]
    lines = [f"# GPU check — {report.get('gpu', '?')}, {report.get('date', '?')}", "",
             f"Command: `{report.get('command', '')}`; torch {report.get('torch', '?')}, mode {report.get('mode', '?')}.", ""]
    for name, body in s.items():
        lines += [f"## {name} ({body.get('wall_s', '?')} s)", ""]
        if "error" in body:
            lines += [f"**failed**: {body['error']}", ""]
            continue
        if "table" in body:
            lines += [body["table"], ""]
        rest = {k: v for k, v in body.items() if k not in ("table", "wall_s", "traceback", "raw")}
        if rest:
            lines += ["```json", json.dumps(rest, indent=2, default=str), "```", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu-report")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes on the CPU (what the tests run)")
    ap.add_argument("--paper-steps", type=int, default=30)
    ap.add_argument("--speed-steps", type=int, default=8)
    args = ap.parse_args()
    out = Path(args.out)
    cuda = torch.cuda.is_available() and not args.tiny
    device = "cuda" if cuda else "cpu"
    REPORT.update(command=" ".join(sys.argv), date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  torch=torch.__version__, mode="tiny (CPU)" if args.tiny else device,
                  gpu=torch.cuda.get_device_name(0) if cuda else "none (CPU)")
    save(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}

    # background: gsplat's first-use compile (CUDA) and the red cube on the CPU
    compile_proc = None
    if cuda:
        cenv = {**env, "MAX_JOBS": env.get("MAX_JOBS", "12"), "TORCH_CUDA_ARCH_LIST": env.get("TORCH_CUDA_ARCH_LIST", "9.0")}
        compile_proc = subprocess.Popen([sys.executable, "-c", "from gsplat.cuda._backend import _C; assert _C is not None"],
                                        env=cenv, stdout=open(out / "gsplat_compile.log", "w"), stderr=subprocess.STDOUT)
    cpu_out, cpu_log = out / "red-cube-cpu", out / "red-cube-cpu.log"
    import shutil

    shutil.rmtree(cpu_out, ignore_errors=True)
    cpu_started = time.time()
    cpu_proc = subprocess.Popen(red_cube_command("cpu", cpu_out, args.tiny), env={**env, "LODS_THREADS": "4"},
                                stdout=open(cpu_log, "w"), stderr=subprocess.STDOUT)

    from lods.priors.tiny_sd import build_tiny_sd

    sd_folder = out / ("sd21-random" if cuda else "tiny-sd")
    section("build the SD-shaped prior", out)(
        lambda: {"folder": str(build_tiny_sd(sd_folder, latent=True, sd21=cuda)), "sd21": cuda})

    def speed():
        from lods.bench.hardware import hardware_line
        from lods.bench.speed import SpeedConfig, render_speed, run_speed_bench

        tiny = {} if cuda else {"prior": str(sd_folder), "size": 32, "batch": 2, "sd21_batches": [1], "memory": False,
                                "methods": ["sds", "lods-embedding", "lods-embedding+shared_draw"]}
        cfg = SpeedConfig(device=device, steps=args.speed_steps if cuda else 2, warmup=2 if cuda else 1, sd21=True,
                          sd21_folder=str(sd_folder), sd21_size=512 if cuda else 32, **tiny,
                          command=f"lods bench speed --device {device} --sd21 --steps {args.speed_steps}")
        result = run_speed_bench(cfg, echo=lambda *_: None)
        return {"table": render_speed(result, hardware_line(result["hardware"])), "raw": result}

    section("2. speed: one guidance step per method (lods bench speed --sd21)", out)(speed)
    section("4. fp16 embedding gradient against fp32", out)(
        lambda: __import__("lods.evaluate.fp16_check", fromlist=["x"]).fp16_gradient_check(
            str(sd_folder), device=device, batch=1 if cuda else 2))

    backend = "auto"
    if compile_proc is not None:
        t0 = time.time()
        rc = compile_proc.wait()
        REPORT["gsplat_compile"] = {"exit_code": rc, "waited_s": round(time.time() - t0, 1),
                                    "log_tail": (out / "gsplat_compile.log").read_text()[-800:]}
        if rc != 0:
            backend = "torch"  # gsplat did not build: the CUDA runs below use our rasterizer on CUDA tensors
        save(out)
    section("1. gsplat (CUDA) against the torch rasterizer (CPU)", out)(
        lambda: compare_rasterizers(64 if args.tiny else 256, 2000, cuda))
    section("3. paper preset, 3DGS, LODS-embedding, SD-2.1-shaped prior", out)(
        lambda: paper_preset_run(str(sd_folder), device, args.paper_steps if cuda else 3, None if cuda else 32, out, backend))

    def red_cubes():
        result = {}
        if cuda:
            cuda_out, cuda_log = out / "red-cube-cuda", out / "red-cube-cuda.log"
            shutil.rmtree(cuda_out, ignore_errors=True)
            started = time.time()
            proc = subprocess.Popen(red_cube_command("cuda", cuda_out, False, backend), env=env,
                                    stdout=open(cuda_log, "w"), stderr=subprocess.STDOUT)
            result["cuda"] = read_red_cube(proc, cuda_out, cuda_log, started)
        result["cpu"] = read_red_cube(cpu_proc, cpu_out, cpu_log, cpu_started)
        result["cpu"]["note"] = "same command with --device cpu, LODS_THREADS=4, run beside the other checks"
        return result

    section("5. lods generate \"a red cube\": CUDA against CPU", out)(red_cubes)
    print(f"[gpu_check] report: {out / 'report.md'}", flush=True)


if __name__ == "__main__":
    main()
