"""The quality benchmark's settings (`BenchConfig`), checked before any run folder is made."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UserError
from .suites import SUITES, parse_categories

DEFAULT_METHODS = ("sds", "lods-embedding")
# cheaper exports than `lods generate` (the benchmark reads views.png and the metrics, not the turntable)
BENCH_EXPORT = {"mesh_resolution": 32, "turntable_frames": 12}


@dataclass
class BenchConfig:
    suite: str = "world"
    methods: list = field(default_factory=lambda: list(DEFAULT_METHODS))
    baseline: str = DEFAULT_METHODS[0]  # the method every other one is paired against in summary.md
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
    backend: str = "local"  # "local" (worker processes) or "ray" (a Ray task per run, ray.py)
    ray_address: str | None = None  # None: a local Ray; "auto" or HOST:PORT: a cluster
    gpus_per_run: float = 1.0  # Ray on CUDA: the GPU fraction a run asks for

    def resolved_preset(self) -> str:
        return self.preset or ("paper" if self.suite == "t3bench" else "fast")

    @property
    def with_cfg(self) -> bool:
        """Whether CFG scales are swept (rows are then also grouped and paired by scale)."""
        return len(self.cfg_scales) > 1 or self.cfg_scales != [None]

    def validate(self) -> None:
        from ..guidance import split_method
        from ..pipelines.run_config import BACKBONES, PRESETS

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
        from .ray import check_backend

        check_backend(self.backend, self.ray_address)
        if not 0 < self.gpus_per_run <= 1024:
            raise UserError(f"--gpus-per-run must be positive, got {self.gpus_per_run}")
        if self.suite == "t3bench":
            from .t3bench import check_t3bench_prior

            check_t3bench_prior(self.prior)


def parse_list(text: str, what: str) -> list[str]:
    items = list(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not items:
        raise UserError(f"{what} is empty")
    return items
