"""The guidance-gap benchmark (`lods bench gap`): does SDS average the modes at low s and over-saturate at high s,
and do LODS and VSD avoid both?

A grid of `method@scale` entries × prompts (ambiguous and specified) × seeds. `--dims 2d`: each job optimises
one image in the 2D playground (`run_distill2d`, the prompt without a view suffix) and is scored against the
completions' canonical front view (azimuth 0, the evaluation elevation); 2D PSNR is only indicative, as the
prior may draw the object at another size or from another view. `--dims 3d`: each job is a `lods generate` run
(the quality benchmark's job pieces), scored by `evaluate_against_truth` at the evaluation views.
Every job writes `gap.json` into its run folder; a job with it is skipped, so a rerun continues where the last
one stopped. Results: OUT/results.csv, OUT/summary.md, OUT/plots/ (bench/gap_report.py).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import Interrupted, UserError
from .results import NOT_RUN, recorded_seconds
from .stats import INF_CFG, cfg_label

DIMS = ("2d", "3d")
DEFAULT_GRID = ("sds@7.5", "sds@30", "sds@100", "csd", "vsd@7.5", "lods-embedding@100", "lods-embedding@1000",
                "lods-lora@100", "lods-lora@1000")
DEFAULT_STEPS_2D = 1000
DEFAULT_PROMPTS = (  # half ambiguous, half specified; all three categories
    "a cube", "a sphere", "a red object", "a blue object", "a cone on a pedestal", "a red cube to the left of a sphere",
    "a blue torus", "a green cylinder", "a yellow pyramid", "a purple sphere on a checkered floor",
    "a orange cone on a mat", "a pink cube on top of a blue cylinder",
)
PROMPT_SETS = ("default", "headline")
GAP_FILE = "gap.json"
COLUMNS = [
    "dims", "method", "guidance", "scale", "backbone", "seed", "start", "prompt", "kind", "category", "n_completions",
    "nearest_completion", "psnr", "ssim", "iou", "saturation", "saturation_error", "realism", "judge_color_confidence",
    "judge_shape_confidence", "judge_confidence", "recognized_views", "n_views", "learned_loss", "learned_loss_clean",
    "learned_fit", "seconds", "steps", "image_lr", "status", "run_dir",
]


# ---------------------------------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class GridEntry:
    method: str  # a guidance name with optional switches: "lods-embedding+shared_draw"
    scale: float | None  # None: the method's preset scale (or no scale, CSD)

    @property
    def label(self) -> str:
        return self.method if self.scale is None else f"{self.method}@{cfg_label(self.scale)}"

    @property
    def guidance(self) -> str:
        return self.method.split("+")[0]


def parse_grid(items: str | list[str] | tuple[str, ...]) -> list[GridEntry]:
    """"sds@7.5,csd,lods-lora@1000" → entries; a bare name keeps its preset's scale; "inf" is 1e6."""
    from ..guidance import GUIDANCES, split_method

    texts = [s.strip() for s in (items.split(",") if isinstance(items, str) else items) if s.strip()]
    if not texts:
        raise UserError("--grid is empty")
    entries = []
    for text in texts:
        method, _, scale_text = text.partition("@")
        name, _ = split_method(method.strip())
        scale = None
        if scale_text:
            try:
                scale = INF_CFG if scale_text.strip().lower() in ("inf", "∞") else float(scale_text)
            except ValueError:
                raise UserError(f"--grid: {text!r}: {scale_text!r} is not a scale") from None
            if not 0 < scale < math.inf:
                raise UserError(f"--grid: {text!r}: the scale must be positive and finite (or inf)")
            if GUIDANCES[name].default_guidance_scale is None:
                raise UserError(f"--grid: {text!r}: {name} has no CFG scale; write it bare")
        entries.append(GridEntry(method.strip(), scale))
    labels = [e.label for e in entries]
    if len(set(labels)) != len(labels):
        raise UserError("--grid names an entry twice")
    return entries


# ---------------------------------------------------------------------------------------------- prompts
def headline_prompts() -> list[str]:
    """30 prompts: 5 per category of the world suite (specified), and from each an ambiguous one (its colour or
    its shape dropped, alternately; in pairs, from either object). Deterministic."""
    from ..world.captions import ObjectSpec, PromptSpec, spec_of
    from ..world.scene import parse_prompt
    from .suites import world_suite

    specified = [s.prompt for s in world_suite(5)]
    ambiguous = []
    for i, prompt in enumerate(specified):
        spec = spec_of(parse_prompt(prompt)[0])
        objs = list(spec.objects)
        j = (i // 2) % len(objs)
        objs[j] = ObjectSpec(objs[j].shape, None) if i % 2 == 0 else ObjectSpec(None, objs[j].color)
        ambiguous.append(PromptSpec(tuple(objs), spec.context, spec.relation).caption())
    return list(dict.fromkeys(ambiguous + specified))


def prompt_kind(prompt: str) -> tuple[str, str]:
    """("ambiguous" | "specified", category) of a world prompt."""
    from ..evaluate.set_metrics import prompt_spec

    spec = prompt_spec(prompt)
    return ("specified" if spec.specified else "ambiguous"), spec.category


# ---------------------------------------------------------------------------------------------- config
@dataclass
class GapConfig:
    grid: list = field(default_factory=lambda: parse_grid(DEFAULT_GRID))
    dims: str = "2d"
    prompts: list | None = None  # None: the prompt set
    prompt_set: str = "default"
    seeds: int = 3
    steps: int | None = None  # None: 1000 (2d), the preset's (3d)
    image_lr: float | None = None  # 2d: Adam's learning rate on the image (None: distill2d's)
    backbones: list = field(default_factory=lambda: ["gs"])  # 3d
    preset: str = "fast"  # 3d
    prior: str | None = None
    device: str = "cpu"
    workers: int = 1
    threads: int = 1
    out: str = "outputs/bench-gap"
    render_size: int | None = None  # 3d
    num_points: int | None = None  # 3d, gs
    export: dict = field(default_factory=dict)  # 3d: export settings over the quality benchmark's
    baseline: str | None = None  # a grid label; None: the SDS entry with the best mean judge confidence
    report_only: bool = False  # start no run: report the finished ones (the others: status "not run")
    restore_from: list = field(default_factory=list)  # results.csv files whose finished jobs count as done (gap_restore.py)
    start_colours: list = field(default_factory=list)  # seed k starts from colour k mod n ([]: the default start; gap_starts.py)
    command: str = ""

    def resolved_prompts(self) -> list[str]:
        if self.prompts is not None:
            return list(self.prompts)
        return headline_prompts() if self.prompt_set == "headline" else list(DEFAULT_PROMPTS)

    def resolved_steps(self) -> int | None:
        return self.steps if self.steps is not None or self.dims == "3d" else DEFAULT_STEPS_2D

    def validate(self) -> None:
        from ..evaluate.set_metrics import completion_scenes, prompt_spec
        from ..pipelines.run_config import BACKBONES

        if self.dims not in DIMS:
            raise UserError(f"--dims must be 2d or 3d, got {self.dims!r}")
        if self.prompt_set not in PROMPT_SETS:
            raise UserError(f"--prompt-set must be one of {', '.join(PROMPT_SETS)}, got {self.prompt_set!r}")
        self.grid = parse_grid([e.label if isinstance(e, GridEntry) else e for e in self.grid])
        for name, value in (("seeds", self.seeds), ("workers", self.workers), ("threads", self.threads)):
            if value < 1:
                raise UserError(f"--{name} must be at least 1, got {value}")
        if self.steps is not None and self.steps < 1:
            raise UserError(f"--steps must be positive, got {self.steps}")
        if self.image_lr is not None:
            if self.dims != "2d":
                raise UserError("--image-lr is the 2D playground's image learning rate; it needs --dims 2d")
            if not 0 < self.image_lr < float("inf"):
                raise UserError(f"--image-lr must be positive and finite, got {self.image_lr}")
        if self.dims == "3d":
            for b in self.backbones or [None]:
                if b not in BACKBONES:
                    raise UserError(f"unknown backbone {b!r}; choose from: {', '.join(BACKBONES)}")
        from .gap_starts import parse_colours

        self.start_colours = parse_colours(self.start_colours)
        if self.start_colours and self.dims == "3d" and set(self.backbones) != {"gs"}:
            raise UserError("--start-colours recolours the 3DGS start ball; a 3d benchmark with it needs --backbones gs")
        if not isinstance(self.restore_from, list):  # None or one csv, as a Python caller may pass them
            self.restore_from = [] if self.restore_from is None else [str(self.restore_from)]
        if self.baseline is not None and self.baseline not in {e.label for e in self.grid}:
            raise UserError(f"--baseline {self.baseline!r} is not an entry of the grid")
        prompts = self.resolved_prompts()
        if not prompts:
            raise UserError("no prompts")
        for p in prompts:
            completion_scenes(prompt_spec(p))  # a world caption with a set small enough to render
        check_vocabulary(self.prior, prompts)


def check_vocabulary(prior: str | None, prompts: list[str]) -> None:
    """The prior must be a world prior on disk that reads every prompt (an older one may not know "object")."""
    from ..priors.embedded import prior_folder
    from ..world.scene import normalize_prompt

    folder = prior_folder(prior or None)
    try:
        vocab = json.loads((folder / "lods_prior.json").read_text()).get("vocabulary")
    except (OSError, ValueError):
        vocab = None
    if not vocab:
        raise UserError(f"the gap benchmark needs a world prior (a folder with lods_prior.json and a vocabulary); "
                        f"{prior or folder} is not one")
    unread = [p for p in prompts if set(normalize_prompt(p).replace(",", " ").split()) - set(vocab)]
    if unread:
        raise UserError(f"the prior at {folder} does not read {len(unread)} prompt(s), e.g. “{unread[0]}”; "
                        "pass --prompts FILE with prompts it knows, or a newer prior")


# ---------------------------------------------------------------------------------------------- jobs
def _slug_dir(gc: GapConfig, entry: GridEntry, backbone: str, seed: int, start: str, slug: str) -> Path:
    from .gap_starts import changes_the_run

    group = entry.label.replace("@", "-s").replace("+", "_").replace("=", "-") + ("" if gc.dims == "2d" else f"-{backbone}") + f"-seed{seed}"
    group += f"-start-{start}" if changes_the_run(gc.dims, start) else ""  # the default start keeps the old folders
    return Path(gc.out) / "runs" / gc.dims / group / slug


def _config_2d(gc: GapConfig, entry: GridEntry, prompt: str, seed: int, out: Path):
    from ..guidance import apply_switches, split_method
    from ..pipelines.distill2d import Distill2DConfig, preset_guidance_config

    name, switches = split_method(entry.method)
    gcfg = apply_switches(preset_guidance_config(name, "fast", keep_scale=True), switches)  # a bare entry: the preset's scale
    image_lr = {} if gc.image_lr is None else {"lr": gc.image_lr}
    return Distill2DConfig(prompt=prompt, guidance=name, prior=gc.prior, steps=gc.resolved_steps(), guidance_scale=entry.scale,
                           seed=seed, device=gc.device, out=str(out), log_every=0, guidance_config=gcfg, **image_lr)


def _config_3d(gc: GapConfig, entry: GridEntry, backbone: str, prompt: str, seed: int, out: Path):
    from .config import BENCH_EXPORT, BenchConfig
    from .jobs import make_generate_config

    bc = BenchConfig(suite="world", preset=gc.preset, prior=gc.prior, device=gc.device, steps=gc.steps,
                     render_size=gc.render_size, num_points=gc.num_points, export={**BENCH_EXPORT, **gc.export})
    return make_generate_config(bc, entry.method, backbone, seed, prompt, entry.scale, out)


def plan_jobs(gc: GapConfig) -> list[dict]:
    """Jobs in an order that interleaves the grid (workers side by side run different methods)."""
    from .gap_starts import apply_start, start_of
    from .suites import unique_slugs

    prompts = gc.resolved_prompts()
    slugs = unique_slugs(prompts)
    backbones = ["2d"] if gc.dims == "2d" else list(gc.backbones)
    jobs = []
    for seed in range(gc.seeds):
        start = start_of(gc.start_colours, gc.dims, seed)
        for prompt in prompts:
            kind, category = prompt_kind(prompt)
            for backbone in backbones:
                for entry in gc.grid:
                    out = _slug_dir(gc, entry, backbone, seed, start, slugs[prompt])
                    cfg = (_config_2d(gc, entry, prompt, seed, out) if gc.dims == "2d"
                           else _config_3d(gc, entry, backbone, prompt, seed, out))
                    jobs.append({"dims": gc.dims, "method": entry.method, "label": entry.label, "backbone": backbone,
                                 "seed": seed, "start": start, "prompt": prompt, "kind": kind, "category": category,
                                 "config": cfg, "index": len(jobs)})
                    apply_start(jobs[-1], gc.out)
    return jobs


def check_existing(job: dict) -> None:
    """A job folder left by an earlier benchmark must hold a run of the same settings."""
    if job["dims"] == "3d":
        from .jobs import check_existing as check_generate

        return check_generate(job)
    from .gap_jobs import check_existing_2d

    check_existing_2d(job["config"], Path(job["config"].out) / GAP_FILE)


# ---------------------------------------------------------------------------------------------- rows
def empty_row(job: dict, status: str) -> dict:
    row = {c: "" for c in COLUMNS}
    row.update(dims=job["dims"], method=job["label"], guidance=job["method"], backbone=job["backbone"], seed=job["seed"],
               start=job["start"], prompt=job["prompt"], kind=job["kind"], category=job["category"], status=status,
               run_dir=str(job["config"].out), steps=job["config"].steps,
               image_lr=job["config"].lr if job["dims"] == "2d" else "")
    return row


def row_from_scores(job: dict, data: dict, status: str) -> dict:
    row = empty_row(job, status)
    row.update({k: data[k] for k in COLUMNS if k in data and data[k] is not None})
    if data.get("restored_run_dir"):
        row["run_dir"] = data["restored_run_dir"]  # where the restored run's files are, not this empty folder
    if job["dims"] == "3d":  # the run's own record: gap.json files before 2026-12-04 mis-timed resumed runs
        row["seconds"] = recorded_seconds(job["config"].out, row["seconds"])
    return row


def run_gap_job(job: dict) -> dict:
    """Run (or skip) one job and score it; returns its results row. Never raises for a failed run."""
    gap = Path(job["config"].out) / GAP_FILE
    try:
        if gap.exists():
            return row_from_scores(job, json.loads(gap.read_text()), "done before")
        from .gap_jobs import run_2d, run_3d

        data, status = run_2d(job) if job["dims"] == "2d" else run_3d(job)
        if data is None:
            return empty_row(job, status)
        from ..utils.io import atomic_write_json

        atomic_write_json(gap, data)
        return row_from_scores(job, data, status)
    except (KeyboardInterrupt, Interrupted):  # a stop signal stops the benchmark; it is not a failed run
        raise
    except Exception as e:  # noqa: BLE001 - a failed run is a result; the others go on
        text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        return empty_row(job, f"failed: {type(e).__name__}: {text}")


def report_row(job: dict) -> dict:
    """A finished job's row from its gap.json; `NOT_RUN` for the others (nothing is run or scored)."""
    gap = Path(job["config"].out) / GAP_FILE
    if not gap.exists():
        return empty_row(job, NOT_RUN)
    return row_from_scores(job, json.loads(gap.read_text()), "done before")


def run_jobs(jobs: list[dict], workers: int, threads: int, on_row: Callable[[dict, int, int], None] | None = None) -> list[dict]:
    done = 0

    def landed(job, row):
        nonlocal done
        done += 1
        if on_row:
            on_row(row, done, len(jobs))

    if workers <= 1:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            rows = []
            for job in jobs:
                rows.append(run_gap_job(job))
                landed(job, rows[-1])
            return rows
        finally:
            torch.set_num_threads(before)
    from .runner import run_in_processes

    def crashed(job, e):
        return empty_row(job, f"failed: worker crashed ({type(e).__name__})")

    return run_in_processes(run_gap_job, jobs, workers, threads, crashed, landed)


def run_gap(gc: GapConfig, on_row: Callable[[dict, int, int], None] | None = None) -> dict:
    """Run the benchmark; returns {"rows", "csv_path", "summary_path", "plots"}."""
    import datetime as _dt

    from .gap_csv import keep_current, write_rows
    from .gap_report import write_plots, write_summary

    gc.validate()
    jobs = plan_jobs(gc)
    from .gap_starts import write_starts

    write_starts(jobs)  # before the configs' checks, which want their start files
    for job in jobs:
        job["config"].validate()
        check_existing(job)
    from .gap_restore import restore

    restore(jobs, gc.restore_from, GAP_FILE)
    out = Path(gc.out)
    out.mkdir(parents=True, exist_ok=True)
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.time()
    if gc.report_only:
        rows = [report_row(job) for job in jobs]
    else:
        rows = run_jobs(jobs, gc.workers, gc.threads,
                        keep_current(out / "results.csv", [report_row(job) for job in jobs], COLUMNS, on_row))
    wall = time.time() - t0
    csv_path = write_rows(out / "results.csv", rows, COLUMNS)
    plots = write_plots(gc, rows, out / "plots")
    summary_path = write_summary(gc, rows, out / "summary.md", started, wall, plots)
    return {"rows": rows, "csv_path": csv_path, "summary_path": summary_path, "plots": plots}


__all__ = ["COLUMNS", "DEFAULT_GRID", "DEFAULT_PROMPTS", "GapConfig", "GridEntry", "headline_prompts",
           "parse_grid", "plan_jobs", "run_gap", "run_gap_job"]
