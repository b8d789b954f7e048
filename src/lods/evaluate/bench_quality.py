"""The quality benchmark: every method × backbone × seed × prompt of a suite through `run_generate`.

Each run gets its own folder `OUT/runs/<method>-<backbone>[-cfg<s>]-s<seed>/<prompt-slug>`; a run whose
metrics.json exists is skipped, one with a checkpoint is resumed, so the benchmark can be stopped and rerun.
Results: `OUT/results.csv` (one row per run), `OUT/summary.md` (mean ± std per category and overall, paired
differences against SDS, the command, the hardware, the date) and `OUT/plots/` (a bar chart per metric and a
grid of views per prompt for a few prompts). With the world suite and the embedded prior every run is scored
against the world's 3D truth; with T3Bench and a Stable Diffusion prior, by ImageReward where it is installed.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import UserError
from .suites import SUITES, SuitePrompt, load_suite, parse_categories, unique_slugs

DEFAULT_METHODS = ("sds", "lods-embedding")
# cheaper exports than `lods generate` (the benchmark reads views.png and the metrics, not the turntable)
BENCH_EXPORT = {"mesh_resolution": 32, "turntable_frames": 12}
INF_CFG = 1e6  # "∞" in the CFG sweep, as docs/algorithm.md's 2D setting

COLUMNS = [
    "method", "backbone", "cfg", "seed", "category", "prompt", "psnr", "ssim", "iou", "r_at_1", "recognized_views",
    "n_views", "saturation_error", "feature_similarity", "truth_r_at_1", "truth_recognized_views", "imagereward",
    "seconds", "seconds_per_step", "wall_seconds", "steps", "loss_distill", "loss_learned", "resumed_from_step", "status",
    "run_dir",
]
SUMMARY_METRICS = [  # (column, table label, short label, higher is better? None: signed, no direction)
    ("psnr", "PSNR (dB) ↑", "PSNR", True),
    ("ssim", "SSIM ↑", "SSIM", True),
    ("iou", "IoU ↑", "IoU", True),
    ("r_at_1", "R@1 ↑", "R@1", True),
    ("recognized_frac", "recognised views ↑", "recognised", True),
    ("saturation_error", "saturation error (signed)", "sat. error", None),
    ("abs_saturation_error", "abs. saturation error ↓", "abs. sat. error", False),
    ("truth_r_at_1", "judge ceiling: R@1 of the truth", "truth R@1", None),
    ("truth_recognized_frac", "judge ceiling: truth recognised", "truth recognised", None),
    ("imagereward", "ImageReward ↑", "ImageReward", True),
    ("seconds", "s / asset ↓", "time", False),
]


@dataclass
class BenchConfig:
    suite: str = "world"
    methods: list = field(default_factory=lambda: list(DEFAULT_METHODS))
    backbones: list = field(default_factory=lambda: ["gs"])
    seeds: int = 3  # seeds 0 .. seeds-1
    prompts_per_category: int | None = None  # None: 10 (world) or all 100 (t3bench)
    categories: list = field(default_factory=lambda: ["single", "surroundings", "multi"])
    steps: int | None = None  # None: the preset's
    cfg_scales: list = field(default_factory=lambda: [None])  # None: the preset's scale for the method
    preset: str | None = None  # None: fast (world), paper (t3bench)
    prior: str | None = None
    device: str | None = None  # None: the preset's
    workers: int = 1
    threads: int = 1  # torch threads per run (each worker process, or this process when workers == 1)
    out: str = "outputs/bench-quality"
    render_size: int | None = None
    num_points: int | None = None
    export: dict = field(default_factory=lambda: dict(BENCH_EXPORT))
    view_grid_prompts: int = 1  # prompts per category shown in the view grids
    imagereward_dir: str | None = None  # None: ~/.cache/ImageReward
    command: str = ""  # recorded in summary.md
    title: str = "quality"
    backend: str = "local"  # "local" (worker processes) or "ray" (a Ray task per run, bench_ray.py)
    ray_address: str | None = None  # None: a local Ray; "auto" or HOST:PORT: a cluster
    gpus_per_run: float = 1.0  # Ray on CUDA: the GPU fraction a run asks for

    def resolved_preset(self) -> str:
        return self.preset or ("paper" if self.suite == "t3bench" else "fast")

    def validate(self) -> None:
        from ..guidance import split_method
        from ..pipelines.generate import BACKBONES, PRESETS

        if self.suite not in SUITES:
            raise UserError(f"unknown suite {self.suite!r}; choose one of: {', '.join(SUITES)}")
        if not self.methods:
            raise UserError("--methods is empty")
        for m in self.methods:
            split_method(m)
        if not self.backbones:
            raise UserError("--backbones is empty")
        for b in self.backbones:
            if b not in BACKBONES:
                raise UserError(f"unknown backbone {b!r}; choose from: {', '.join(BACKBONES)}")
        if self.resolved_preset() not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r}; choose one of: {', '.join(PRESETS)}")
        if self.seeds < 1:
            raise UserError(f"--seeds must be at least 1, got {self.seeds}")
        if self.steps is not None and self.steps < 1:
            raise UserError(f"--steps must be positive, got {self.steps}")
        if self.workers < 1:
            raise UserError(f"--workers must be at least 1, got {self.workers}")
        if self.threads < 1:
            raise UserError(f"--threads must be at least 1, got {self.threads}")
        for s in self.cfg_scales:
            if s is not None and not s > 0:
                raise UserError(f"CFG scales must be positive, got {s}")
        self.categories = parse_categories(self.categories)
        from ..ray_backend import check_backend

        check_backend(self.backend, self.ray_address)
        if not 0 < self.gpus_per_run <= 1024:
            raise UserError(f"--gpus-per-run must be positive, got {self.gpus_per_run}")
        if self.suite == "t3bench":
            check_t3bench_prior(self.prior)


def parse_list(text: str, what: str) -> list[str]:
    items = list(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not items:
        raise UserError(f"{what} is empty")
    return items


# ---------------------------------------------------------------------------------------------- T3Bench
def check_t3bench_prior(prior: str | None) -> None:
    """T3Bench's free-text prompts need an open-vocabulary prior (Stable Diffusion), not the embedded one."""
    if prior is None:
        raise UserError("--suite t3bench needs --prior: a Stable Diffusion folder or hub id (e.g. "
                        "stabilityai/stable-diffusion-2-1-base); the embedded prior only reads captions of the world")
    path = Path(prior).expanduser()
    meta = path / "lods_prior.json"
    if path.is_dir() and meta.exists():
        try:
            vocab = json.loads(meta.read_text()).get("vocabulary")
        except (OSError, ValueError):
            vocab = None
        if vocab:
            raise UserError(f"the prior {prior} has a closed vocabulary ({len(vocab)} words) and cannot read T3Bench's "
                            "prompts; pass a Stable Diffusion prior with --prior")


def imagereward_dir(path: str | None) -> Path:
    return Path(path).expanduser() if path else Path("~/.cache/ImageReward").expanduser()


def imagereward_missing(weights_dir: str | None = None) -> list[str]:
    """What is missing to score with ImageReward (empty: ready). Nothing is downloaded."""
    import importlib.util

    missing = []
    if importlib.util.find_spec("ImageReward") is None:
        missing.append("the Python package `ImageReward` (pip install image-reward)")
    folder = imagereward_dir(weights_dir)
    for name in ("ImageReward.pt", "med_config.json"):
        if not (folder / name).is_file():
            missing.append(f"{folder / name} (from the Hugging Face repo THUDM/ImageReward)")
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache("bert-base-uncased", "vocab.txt")
    except Exception:  # noqa: BLE001 - any failure means: not usable offline
        cached = None
    if not isinstance(cached, str):
        missing.append("the bert-base-uncased tokenizer in the Hugging Face cache (ImageReward's BLIP text side)")
    return missing


def imagereward_message(missing: list[str]) -> str:
    return ("ImageReward scores were not computed; missing: " + "; ".join(missing) +
            ". The runs' time and losses are recorded; install the missing parts and rerun the same command to score "
            "the finished runs (they are not recomputed).")


class ImageRewardScorer:
    """ImageReward (THUDM) from local files only: mean reward over a run's evaluation views."""

    def __init__(self, weights_dir: str | None = None, device: str = "cpu"):
        import torch
        from ImageReward.ImageReward import ImageReward as _Model

        folder = imagereward_dir(weights_dir)
        self.device = device
        self.model = _Model(device=device, med_config=str(folder / "med_config.json")).to(device)
        self.model.load_state_dict(torch.load(folder / "ImageReward.pt", map_location="cpu", weights_only=True), strict=False)
        self.model.eval()

    def score_run(self, run_dir: Path, prompt: str) -> float:
        import tempfile

        import torch

        paths = []
        with tempfile.TemporaryDirectory() as tmp:
            for i, tile in enumerate(view_tiles(run_dir)):
                p = Path(tmp) / f"view{i}.png"
                tile.save(p)
                paths.append(str(p))
            with torch.no_grad():
                rewards = self.model.score(prompt, paths)
        rewards = rewards if isinstance(rewards, list) else [rewards]
        return float(sum(rewards) / len(rewards))


def view_tiles(run_dir: Path) -> list:
    """The evaluation views of a finished run, cut out of its views.png (PIL images)."""
    import yaml
    from PIL import Image

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    size, n = int(cfg["export"]["views_size"]), int(cfg["export"]["eval_views"])
    grid = Image.open(run_dir / "views.png").convert("RGB")
    nrow = min(4, n)
    return [grid.crop(((i % nrow) * size, (i // nrow) * size, (i % nrow + 1) * size, (i // nrow + 1) * size)) for i in range(n)]


# ---------------------------------------------------------------------------------------------- jobs
def cfg_label(scale: float | None) -> str:
    if scale is None:
        return ""
    if scale >= INF_CFG:
        return "inf"
    return f"{scale:g}"


def run_group(method: str, backbone: str, seed: int, scale: float | None) -> str:
    label = cfg_label(scale)
    return f"{method}-{backbone}" + (f"-cfg{label}" if label else "") + f"-s{seed}"


def make_generate_config(bc: BenchConfig, method: str, backbone: str, seed: int, prompt: str, scale, out: Path):
    from ..guidance import split_method
    from ..pipelines.generate import preset_config

    name, switches = split_method(method)
    cfg = preset_config(bc.resolved_preset(), backbone, name)
    cfg.guidance_config = dataclasses.replace(cfg.guidance_config, **switches)
    cfg.prompt, cfg.seed, cfg.out = prompt, seed, str(out)
    if bc.prior is not None:
        cfg.prior = bc.prior
    if bc.device is not None:
        cfg.device = bc.device
    if bc.steps is not None:
        cfg.steps = bc.steps
    if scale is not None:
        cfg.guidance_config.guidance_scale = float(scale)
    if bc.render_size is not None:
        cfg.render_size = bc.render_size
    if bc.num_points is not None and backbone == "gs":
        cfg.gaussians = {**cfg.gaussians, "num_points": bc.num_points}
    for k, v in (bc.export or {}).items():
        if not hasattr(cfg.export, k):
            raise UserError(f"unknown export setting {k!r}")
        setattr(cfg.export, k, v)
    cfg.checkpoint_every = max(1, min(cfg.checkpoint_every, cfg.steps))
    return cfg


def plan_jobs(bc: BenchConfig, suite: list[SuitePrompt]) -> list[dict]:
    """Jobs in an order that interleaves methods (workers running side by side run different methods)."""
    slugs = unique_slugs([s.prompt for s in suite])
    out = Path(bc.out)
    jobs = []
    for seed in range(bc.seeds):
        for sp in suite:
            for backbone in bc.backbones:
                for scale in bc.cfg_scales:
                    for method in bc.methods:
                        run_dir = out / "runs" / run_group(method, backbone, seed, scale) / slugs[sp.prompt]
                        cfg = make_generate_config(bc, method, backbone, seed, sp.prompt, scale, run_dir)
                        jobs.append({"method": method, "backbone": backbone, "seed": seed, "category": sp.category,
                                     "prompt": sp.prompt, "cfg_requested": scale, "config": cfg, "index": len(jobs)})
    return jobs


_COMPARED = ("prompt", "backbone", "guidance", "seed", "steps", "prior", "preset", "render_size", "device")


def check_existing(job: dict) -> None:
    """A run folder left by an earlier benchmark must have been made with the same settings."""
    import yaml

    cfg = job["config"]
    path = Path(cfg.out) / "config.yaml"
    if not path.exists():
        return
    old = yaml.safe_load(path.read_text()) or {}
    new = dataclasses.asdict(cfg)
    diffs = [k for k in _COMPARED if old.get(k) != new.get(k)]
    old_s = (old.get("guidance_config") or {}).get("guidance_scale")
    if old_s != new["guidance_config"]["guidance_scale"]:
        diffs.append("guidance_scale")
    if diffs:
        k = diffs[0]
        was = old_s if k == "guidance_scale" else old.get(k)
        now = new["guidance_config"]["guidance_scale"] if k == "guidance_scale" else new.get(k)
        raise UserError(f"{path.parent} holds a run made with other settings ({k}: {was!r} there, {now!r} now); "
                        "choose another --out, or delete that run folder")


def _nan() -> float:
    return float("nan")


def row_from_metrics(job: dict, metrics: dict | None, status: str, wall: float) -> dict:
    cfg = job["config"]
    row = {c: "" for c in COLUMNS}
    row.update(method=job["method"], backbone=job["backbone"], seed=job["seed"], category=job["category"],
               prompt=job["prompt"], status=status, run_dir=str(cfg.out), wall_seconds=round(wall, 3),
               cfg=cfg.guidance_config.guidance_scale if _uses_cfg(job["method"]) else "", steps=cfg.steps)
    for k in ("psnr", "ssim", "iou", "r_at_1", "saturation_error", "feature_similarity", "truth_r_at_1", "imagereward",
              "seconds", "seconds_per_step", "loss_distill", "loss_learned"):
        row[k] = _nan()
    row["recognized_views"] = row["n_views"] = row["resumed_from_step"] = row["truth_recognized_views"] = ""
    if metrics is None:
        return row
    truth = metrics.get("ground_truth") or {}
    for k in ("psnr", "ssim", "iou", "r_at_1", "saturation_error", "feature_similarity", "truth_r_at_1"):
        if k in truth:
            row[k] = float(truth[k])
    if "truth_recognized_views" in truth:
        row["truth_recognized_views"] = int(truth["truth_recognized_views"])
    if "recognized_views" in truth:
        row["recognized_views"] = int(truth["recognized_views"])
        row["n_views"] = int(truth.get("n_views", len((truth.get("per_view") or {}).get("psnr", []))))
    start = int(metrics.get("resumed_from_step", 0))
    steps = int(metrics.get("steps", cfg.steps))
    row["resumed_from_step"] = start
    row["steps"] = steps
    if start == 0:
        row["seconds"] = float(metrics["seconds"])
        row["seconds_per_step"] = float(metrics["seconds_per_step"])
    elif start < steps:  # resumed: the time of the part run now, extrapolated to the whole run
        row["seconds_per_step"] = float(metrics["seconds_per_step"])
        row["seconds"] = row["seconds_per_step"] * steps
    losses = metrics.get("final_losses") or {}
    row["loss_distill"] = float(losses.get("loss_distill", losses.get("loss_sds", _nan())))  # loss_sds: runs before issue 12
    row["loss_learned"] = float(losses.get("loss_learned", losses.get("loss_prior", _nan())))
    return row


def failed_row(job: dict, status: str) -> dict:
    return row_from_metrics(job, None, status, 0.0)


def _uses_cfg(method: str) -> bool:
    from ..guidance import GUIDANCES, split_method

    return GUIDANCES[split_method(method)[0]].default_guidance_scale is not None


def run_job(job: dict, prior=None) -> dict:
    """Run (or skip, or resume) one benchmark run; returns its results row. Never raises for a failed run.
    `prior`: an already-loaded prior for the run (None: run_generate loads it)."""
    from ..pipelines.generate import run_generate

    cfg = job["config"]
    out = Path(cfg.out)
    t0 = time.time()
    try:
        if (out / "metrics.json").exists():
            metrics = json.loads((out / "metrics.json").read_text())
            status = "done before"
        elif (out / "checkpoints" / "last.safetensors").exists():
            metrics = run_generate(cfg, resume=True, prior=prior)
            status = "resumed"
        else:  # a folder stopped before its first checkpoint starts over (RunDir checks it under its lock)
            metrics = run_generate(cfg, prior=prior)
            status = "ok"
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - a failed run is a result; the others go on
        text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        return row_from_metrics(job, None, f"failed: {type(e).__name__}: {text}", time.time() - t0)
    return row_from_metrics(job, metrics, status, time.time() - t0)


def run_jobs(jobs: list[dict], workers: int, on_row: Callable[[dict, int, int], None] | None = None,
             threads: int = 1) -> list[dict]:
    rows: list[dict | None] = [None] * len(jobs)
    done = 0
    if workers <= 1:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            for job in jobs:
                rows[job["index"]] = row = run_job(job)
                done += 1
                if on_row:
                    on_row(row, done, len(jobs))
        finally:
            torch.set_num_threads(before)
        return rows  # type: ignore[return-value]
    from ..utils.pool import run_in_processes

    def crashed(job, e):
        return row_from_metrics(job, None, f"failed: worker crashed ({type(e).__name__})", 0.0)

    def landed(job, row):
        nonlocal done
        done += 1
        if on_row:
            on_row(row, done, len(jobs))

    return run_in_processes(run_job, jobs, workers, threads, crashed, landed)


# ---------------------------------------------------------------------------------------------- driver
def run_bench(bc: BenchConfig, on_row: Callable[[dict, int, int], None] | None = None,
              message: Callable[[str], None] | None = None) -> dict:
    """Run the benchmark; returns {"rows", "summary_path", "csv_path", "plots", "notes"}."""
    bc.validate()
    suite = load_suite(bc.suite, bc.prompts_per_category, bc.categories)
    jobs = plan_jobs(bc, suite)
    for job in jobs:
        job["config"].validate()
        check_existing(job)
    out = Path(bc.out)
    out.mkdir(parents=True, exist_ok=True)
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.time()
    if bc.backend == "ray":
        from .bench_ray import run_jobs_ray

        rows = run_jobs_ray(jobs, run_job, failed_row, ray_address=bc.ray_address, threads=bc.threads,
                            gpus_per_run=bc.gpus_per_run, on_row=on_row)
    else:
        rows = run_jobs(jobs, bc.workers, on_row, bc.threads)
    wall = time.time() - t0
    notes = []
    if bc.suite == "t3bench":
        notes += score_imagereward(bc, rows, message)
    csv_path = write_csv(out / "results.csv", rows)
    plots = write_plots(bc, rows, out / "plots", suite)
    summary_path = out / "summary.md"
    from ..utils.io import atomic_write_text

    atomic_write_text(summary_path, render_summary(bc, rows, suite, started, wall, plots, notes))
    return {"rows": rows, "csv_path": csv_path, "summary_path": summary_path, "plots": plots, "notes": notes}


def score_imagereward(bc: BenchConfig, rows: list[dict], message=None) -> list[str]:
    """Add ImageReward to the rows of finished runs (cached per run in imagereward.json)."""
    finished = [r for r in rows if not str(r["status"]).startswith("failed")]
    pending = []
    for r in finished:
        cache = Path(r["run_dir"]) / "imagereward.json"
        if cache.exists():
            r["imagereward"] = float(json.loads(cache.read_text())["imagereward"])
        else:
            pending.append(r)
    if not pending:
        return []
    missing = imagereward_missing(bc.imagereward_dir)
    if missing:
        text = imagereward_message(missing)
        if message:
            message(text)
        return [text]
    from ..utils.io import atomic_write_json

    device = bc.device or ("cuda" if bc.resolved_preset() == "paper" else "cpu")
    scorer = ImageRewardScorer(bc.imagereward_dir, device=device)
    for r in pending:
        r["imagereward"] = scorer.score_run(Path(r["run_dir"]), r["prompt"])
        atomic_write_json(Path(r["run_dir"]) / "imagereward.json", {"imagereward": r["imagereward"], "prompt": r["prompt"]})
    return []


def write_csv(path: Path, rows: list[dict]) -> Path:
    import io

    from ..utils.io import atomic_write_text

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt_csv(r.get(k, "")) for k in COLUMNS})
    atomic_write_text(path, buf.getvalue())
    return path


def _fmt_csv(v):
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------------------------- summary
def _value(row: dict, key: str) -> float:
    if key in ("recognized_frac", "truth_recognized_frac"):
        rv, n = row.get("recognized_views" if key == "recognized_frac" else "truth_recognized_views"), row.get("n_views")
        return float(rv) / float(n) if rv not in ("", None) and n not in ("", None, 0) else _nan()
    if key == "abs_saturation_error":
        return abs(_value(row, "saturation_error"))
    v = row.get(key, "")
    if v in ("", None):
        return _nan()
    try:
        return float(v)
    except (TypeError, ValueError):
        return _nan()


def _finite(values) -> list[float]:
    return [v for v in values if not math.isnan(v)]


def mean_std(values) -> tuple[float, float, int]:
    vals = _finite(values)
    if not vals:
        return _nan(), _nan(), 0
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0), len(vals)


def _fmt(m: float, s: float, digits: int = 3) -> str:
    if math.isnan(m):
        return "–"
    return f"{m:.{digits}g} ± {s:.2g}" if abs(m) < 1000 else f"{m:.0f} ± {s:.0f}"


def group_key(row: dict, with_cfg: bool = True) -> tuple:
    """(method, backbone, CFG label): the CFG scale is part of every group (each method's own, or the sweep's)."""
    return (row["method"], row["backbone"], cfg_label(_cfg_float(row["cfg"])) or "–")


def key_label(key: tuple) -> str:
    method, backbone, cfg = key
    return f"{method} {backbone}" + ("" if cfg == "–" else f" s={'∞' if cfg == 'inf' else cfg}")


def _cfg_float(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _groups(rows: list[dict], with_cfg: bool) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault(group_key(r, with_cfg), []).append(r)
    return out


def _metrics_present(rows: list[dict]) -> list[tuple[str, str, bool | None]]:
    return [m for m in SUMMARY_METRICS if _finite(_value(r, m[0]) for r in rows)]


def _plotted_metrics(rows: list[dict]) -> list[tuple[str, str, bool | None]]:
    """The metrics with a bar chart: the judge's ceiling (scores of the truth) is a table column only."""
    return [m for m in _metrics_present(rows) if not m[0].startswith("truth_")]


def hardware_info(device: str = "cpu") -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "os": platform.platform()}
    try:
        info["cores_available"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    if str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def hardware_line(info: dict) -> str:
    text = f"{info['cpu']}, {info['cores']} cores"
    if info.get("cores_available") and info["cores_available"] != info["cores"]:
        text += f" ({info['cores_available']} available)"
    if info.get("memory_gb"):
        text += f", {info['memory_gb']} GiB RAM"
    if info.get("gpu"):
        text += f"; GPU {info['gpu']}"
    return text + f"; torch {info['torch']}, Python {info['python']}"


def prior_line(prior: str | None) -> str:
    from ..priors.embedded import EMBEDDED_PRIOR_DIR

    folder = Path(prior).expanduser() if prior else EMBEDDED_PRIOR_DIR
    name = "the embedded prior" if prior is None else f"`{prior}`"
    meta = folder / "lods_prior.json"
    if folder.is_dir() and meta.exists():
        try:
            data = json.loads(meta.read_text())
        except (OSError, ValueError):
            data = {}
        bits = [f"{k} {data[k]}" for k in ("step",) if k in data]
        if bits:
            name += f" ({', '.join(bits)})"
    return name + f" at {folder}" if prior is None else name


def render_summary(bc: BenchConfig, rows: list[dict], suite: list[SuitePrompt], started, wall: float,
                   plots: list[Path], notes: list[str]) -> str:
    with_cfg = len(bc.cfg_scales) > 1 or bc.cfg_scales != [None]
    ok = [r for r in rows if not str(r["status"]).startswith("failed")]
    failed = [r for r in rows if str(r["status"]).startswith("failed")]
    metrics = _metrics_present(ok) or [m for m in SUMMARY_METRICS if m[0] == "seconds"]
    hw = hardware_info(bc.device or "cpu")
    lines = [f"# Benchmark: {bc.title} ({bc.suite} suite)", ""]
    lines += [f"- Command: `{bc.command or '(called from Python)'}`",
              f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')}; wall time {wall / 60:.1f} min "
              + (f"on Ray ({bc.ray_address or 'a local instance'}), one task per run" if bc.backend == "ray"
                 else f"with {bc.workers} worker process(es)") + f", {bc.threads} torch thread(s) each",
              f"- Hardware: {hardware_line(hw)}",
              f"- Prior: {prior_line(bc.prior)}",
              f"- Settings: preset {bc.resolved_preset()}, steps {bc.steps or 'preset default'}, seeds 0..{bc.seeds - 1}, "
              f"backbones {', '.join(bc.backbones)}, methods {', '.join(bc.methods)}"
              + (f", CFG scales {', '.join(cfg_label(s) or 'default' for s in bc.cfg_scales)}" if with_cfg else ""),
              f"- Runs: {len(rows)} ({len(ok)} finished, {len(failed)} failed); "
              f"{sum(1 for r in rows if r['status'] == 'done before')} reused from an earlier invocation, "
              f"{sum(1 for r in rows if r['status'] == 'resumed')} resumed", ""]
    lines += ["Mean ± standard deviation over runs (prompts × seeds). PSNR, SSIM, IoU and the saturation error compare "
              "the result with the world's true render at the 8 fixed evaluation views; R@1 and recognised views are "
              "the judge's (world classifier's) scores. Saturation error is signed (negative: paler than the truth). "
              "s / asset is the optimisation loop's time (exports and scoring excluded); with several workers the runs "
              "share the CPU, so it is comparable between methods of one table, not to a machine at rest.", ""]
    for note in notes:
        lines += [f"**Note:** {note}", ""]
    groups = _groups(ok, with_cfg)
    head = ["method", "backbone", "CFG"]
    for title, subset in [("Overall", None)] + [(f"Category: {c}", c) for c in bc.categories]:
        lines += [f"## {title}", ""]
        lines += ["| " + " | ".join(head + ["runs"] + [m[1] for m in metrics]) + " |",
                  "|" + "---|" * (len(head) + 1 + len(metrics))]
        for key, grp in groups.items():
            sel = [r for r in grp if subset is None or r["category"] == subset]
            if not sel:
                continue
            cells = list(key) + [str(len(sel))]
            for m, *_ in metrics:
                mu, sd, _ = mean_std(_value(r, m) for r in sel)
                cells.append(_fmt(mu, sd))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += paired_section(ok, bc, with_cfg, metrics)
    if failed:
        lines += ["## Failed runs", ""] + [f"- {r['method']} {r['backbone']} s{r['seed']} “{r['prompt']}”: {r['status']}"
                                           for r in failed] + [""]
    lines += ["## Prompts", ""]
    for c in bc.categories:
        lines.append(f"- {c}: " + "; ".join(f"“{s.prompt}”" for s in suite if s.category == c))
    lines.append("")
    if plots:
        lines += ["## Plots", ""] + [f"- [{p.name}](plots/{p.name})" for p in plots] + [""]
    lines += ["Files: `results.csv` (one row per run), `runs/<method>-<backbone>-s<seed>/<prompt>/` (each run's folder).", ""]
    return "\n".join(lines)


def paired_section(rows: list[dict], bc: BenchConfig, with_cfg: bool, metrics) -> list[str]:
    """Each method against SDS on the same backbone, seed and prompt (and CFG scale in the sweep)."""
    if "sds" not in {r["method"] for r in rows}:
        return []
    keyed: dict[tuple, dict] = {}
    for r in rows:
        keyed[(r["method"], r["backbone"], r["seed"], r["prompt"], r["cfg"] if with_cfg else "")] = r
    used = [m for m in metrics if m[3] is not None]
    lines = ["## Paired differences against SDS", "",
             "Method minus SDS on the same backbone, seed and prompt" +
             (" and CFG scale" if with_cfg else ", each method at its own CFG scale (tables above)") +
             ": mean ± standard error of the difference, and how often the method is better (ties excluded).", "",
             "| method | backbone" + (" | CFG" if with_cfg else "") + " | pairs | " + " | ".join(f"Δ {m[1]}" for m in used) +
             " | " + " | ".join(f"better: {m[2]}" for m in used) + " |",
             "|" + "---|" * (3 + with_cfg + 2 * len(used))]
    methods = [m for m in bc.methods if m != "sds"]
    cfgs = sorted({r["cfg"] for r in rows if r["method"] in methods}, key=lambda v: _cfg_float(v) or 0.0) if with_cfg else [""]
    for method in methods:
        for backbone in bc.backbones:
            for c in cfgs:
                pairs = []
                for (m, b, s, p, cc), r in keyed.items():
                    if m == method and b == backbone and cc == c:
                        base = keyed.get(("sds", b, s, p, cc))
                        if base is not None:
                            pairs.append((r, base))
                if not pairs:
                    continue
                cells = [method, backbone] + ([cfg_label(_cfg_float(c)) or "default"] if with_cfg else []) + [str(len(pairs))]
                deltas, wins = paired_cells(pairs, used)
                lines.append("| " + " | ".join(cells + deltas + wins) + " |")
    return lines + [""]


def paired_cells(pairs: list[tuple[dict, dict]], metrics) -> tuple[list[str], list[str]]:
    """For (row, baseline row) pairs: per metric, "mean ± standard error" of row − baseline, and "better/decided"."""
    deltas, wins = [], []
    for m, _, _, higher in metrics:
        d = _finite(_value(r, m) - _value(b, m) for r, b in pairs)
        if not d:
            deltas.append("–")
            wins.append("–")
            continue
        se = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else 0.0
        deltas.append(f"{statistics.fmean(d):+.3g} ± {se:.2g}")
        better = sum(1 for x in d if (x > 0) == higher and x != 0)
        worse = sum(1 for x in d if (x < 0) == higher and x != 0)
        wins.append(f"{better}/{better + worse}")
    return deltas, wins


# ---------------------------------------------------------------------------------------------- plots
def write_plots(bc: BenchConfig, rows: list[dict], folder: Path, suite: list[SuitePrompt]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    ok = [r for r in rows if not str(r["status"]).startswith("failed")]
    with_cfg = len(bc.cfg_scales) > 1 or bc.cfg_scales != [None]
    groups = _groups(ok, with_cfg)
    written = []
    cats = list(bc.categories) + ["overall"]
    for m, label, *_ in _plotted_metrics(ok):
        fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(cats) * max(1, len(groups)) / 2.5, 3.6))
        width = 0.8 / max(1, len(groups))
        for gi, (key, grp) in enumerate(groups.items()):
            means, stds = [], []
            for c in cats:
                mu, sd, _ = mean_std(_value(r, m) for r in grp if c == "overall" or r["category"] == c)
                means.append(0.0 if math.isnan(mu) else mu)
                stds.append(0.0 if math.isnan(sd) else sd)
            xs = [i + (gi - (len(groups) - 1) / 2) * width for i in range(len(cats))]
            ax.bar(xs, means, width, yerr=stds, capsize=2, label=key_label(key))
        ax.set_xticks(range(len(cats)), cats)
        ax.set_ylabel(label)
        ax.set_title(f"{label}: mean ± std")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = folder / f"{m}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    if with_cfg:
        written += _cfg_plots(ok, folder, plt)
    written += view_grids(bc, ok, folder, suite, plt)
    return written


def _cfg_plots(rows: list[dict], folder: Path, plt) -> list[Path]:
    written = []
    by_method: dict[tuple, dict[float, list[dict]]] = {}
    for r in rows:
        s = _cfg_float(r["cfg"])
        if s is None:
            continue
        by_method.setdefault((r["method"], r["backbone"]), {}).setdefault(s, []).append(r)
    if not by_method:
        return []
    for m, label, *_ in _plotted_metrics(rows):
        fig, ax = plt.subplots(figsize=(4.8, 3.4))
        for key, per in by_method.items():
            xs = sorted(per)
            stats = [mean_std(_value(r, m) for r in per[x]) for x in xs]
            ax.errorbar(xs, [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", capsize=3, label=" ".join(key))
        ax.set_xscale("log")
        ticks = sorted({x for per in by_method.values() for x in per})
        ax.set_xticks(ticks, ["∞" if t >= INF_CFG else f"{t:g}" for t in ticks])
        ax.set_xlabel("CFG scale s")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = folder / f"cfg_{m}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def view_grids(bc: BenchConfig, rows: list[dict], folder: Path, suite: list[SuitePrompt], plt) -> list[Path]:
    """For the first `view_grid_prompts` prompts of each category: one row per method (seed 0), truth on top."""
    from PIL import Image

    from .suites import slugify

    chosen = []
    for c in bc.categories:
        chosen += [s for s in suite if s.category == c][: bc.view_grid_prompts]
    written = []
    with_cfg = len(bc.cfg_scales) > 1 or bc.cfg_scales != [None]
    for sp in chosen:
        panels = []
        truth = _truth_views(sp.prompt, rows) if bc.suite == "world" else None
        if truth is not None:
            panels.append(("world truth", truth))
        seed0 = sorted((r for r in rows if r["prompt"] == sp.prompt), key=lambda r: int(r["seed"]))
        seen = set()
        for r in seed0:
            key = group_key(r, with_cfg)
            path = Path(r["run_dir"]) / "views.png"
            if key in seen or not path.exists():
                continue
            seen.add(key)
            panels.append((key_label(key) + f", seed {r['seed']}", Image.open(path).convert("RGB")))
        if not panels:
            continue
        w, h = panels[-1][1].size
        fig, axes = plt.subplots(len(panels), 1, figsize=(max(4.0, 6.0 * w / max(h, 1) / 2), 1.6 * len(panels) + 0.4),
                                 squeeze=False)
        for ax, (label, im) in zip(axes[:, 0], panels):
            ax.imshow(im)
            ax.set_axis_off()
            ax.set_title(label, fontsize=8, loc="left")
        fig.suptitle(sp.prompt, fontsize=9)
        fig.tight_layout()
        path = folder / f"views_{slugify(sp.prompt)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _truth_views(prompt: str, rows: list[dict]):
    """The world's true render of a prompt at the evaluation views, laid out as views.png and over the same
    background colour (read from the corner of a run's views.png), or None."""
    try:
        import numpy as np
        import torch
        import yaml
        from PIL import Image

        from ..export.images import image_grid, to_uint8
        from ..render.cameras import evaluation_cameras
        from ..world.render import render_scene
        from ..world.scene import parse_prompt

        run = next(Path(r["run_dir"]) for r in rows if r["prompt"] == prompt and (Path(r["run_dir"]) / "views.png").exists())
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        size, n = int(cfg["export"]["views_size"]), int(cfg["export"]["eval_views"])
        corner = np.asarray(Image.open(run / "views.png").convert("RGB"))[0, 0] / 255.0
        scene, _ = parse_prompt(prompt)
        truth = render_scene(scene, evaluation_cameras(n), size=size)
        rgb, alpha = truth["rgb"].float(), truth["alpha"].float()
        bg = torch.tensor(corner, dtype=torch.float32).view(1, 3, 1, 1)
        rgb = (rgb - (1.0 - alpha) + (1.0 - alpha) * bg).clamp(0, 1)  # rendered over white → over the runs' colour
        return Image.fromarray(to_uint8(image_grid(rgb, min(4, n))))
    except Exception:  # noqa: BLE001 - the truth row is a courtesy; the grid is drawn without it
        return None


def command_line(name: str, options: dict) -> str:
    """`lods bench NAME --opt value ...` with every option explicit (the exact equivalent of what ran)."""
    import shlex

    parts = ["lods", "bench", name]
    for k, v in options.items():
        flag = "--" + k.replace("_", "-")
        if v is None or v is False:
            continue
        if v is True:
            parts.append(flag)
        else:
            parts += [flag, shlex.quote(str(v))]
    return " ".join(parts)


def echo_row(row: dict, done: int, total: int) -> str:
    bits = [f"[{done}/{total}] {row['method']} {row['backbone']}" + (f" cfg {cfg_label(_cfg_float(row['cfg']))}" if row["cfg"] != "" else "")
            + f" s{row['seed']} “{row['prompt']}”: {row['status']}"]
    for k, fmt in (("psnr", "PSNR {:.2f}"), ("iou", "IoU {:.2f}"), ("r_at_1", "R@1 {:.0f}"), ("seconds", "{:.0f} s")):
        v = _value(row, k)
        if not math.isnan(v):
            bits.append(fmt.format(v))
    return ", ".join(bits)

