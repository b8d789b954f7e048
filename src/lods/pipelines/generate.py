"""Text-to-3D: one loop that wires a prior, a guidance and a 3D backbone, with checkpoints and exact resume.

Every step reseeds the global torch RNG from (seed, step), so cameras, timesteps, noise and densification
draw the same numbers whether the run was interrupted or not; a resumed run reaches the same result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from ..config import dump_yaml, from_dict
from ..errors import Interrupted, UserError
from ..guidance import GUIDANCES, build_guidance, guidance_class
from ..guidance.base import GuidanceConfig
from ..render.cameras import CameraSamplerConfig, sample_cameras
from ..scenes.base import Scene3D
from ..runs import RunDir, StopSignals, Stopwatch
from .step_log import StepLog
from ..utils.io import (CorruptCheckpoint, atomic_write_json, atomic_write_text, load_checkpoint, optimizer_from_tensors,
                        optimizer_to_tensors, save_checkpoint)

BACKBONES = ("gs", "nerf")
MAX_SEED = 10**13  # every step seeds torch with seed * 1_000_003 + step, which must stay below 2**64
PRESETS = ("fast", "paper")
MESH_KINDS = ("vertex", "textured")


@dataclass
class ExportConfig:
    mesh_resolution: int = 64
    turntable_frames: int = 36
    turntable_size: int = 128
    views_size: int = 64
    eval_views: int = 8
    mesh: str = "vertex"  # "vertex": vertex colours; "textured": UV-unwrapped, baked texture (+ obj, mtl, png)
    mesh_max_faces: int | None = None  # decimate to this face budget (None: keep marching cubes' faces)
    texture_size: int = 512


@dataclass
class GenerateConfig:
    prompt: str = ""
    backbone: str = "gs"
    guidance: str = "lods-embedding"
    prior: str | None = None  # None: the embedded prior
    preset: str = "fast"
    steps: int = 400
    seed: int = 0
    device: str = "cpu"
    out: str = "outputs/run"
    render_size: int = 64
    # progressive resolution: [[step, size], ...] switches the render size at those steps
    resolution_schedule: list = field(default_factory=list)
    background: str = "white"  # "white", "black", or "random" (a random flat colour per view, as threestudio)
    adam_betas: list = field(default_factory=lambda: [0.9, 0.99])  # of the one optimiser (scene + guidance)
    init_ply: str | None = None  # gs: initialise the Gaussians from a point cloud or splat ply (None: the ball)
    init_ply_scale: float = 1.0  # positions (and splat scales) multiplied by this (the reference: 1.6 for Shap-E)
    checkpoint_every: int = 100
    lambdas: dict = field(default_factory=lambda: {"sds": 1.0, "prior": 1.0})
    cameras: CameraSamplerConfig = field(default_factory=CameraSamplerConfig)
    guidance_config: GuidanceConfig = field(default_factory=GuidanceConfig)
    gaussians: dict = field(default_factory=dict)  # GaussianConfig fields
    nerf: dict = field(default_factory=dict)  # FieldConfig fields
    export: ExportConfig = field(default_factory=ExportConfig)

    def validate(self) -> None:
        if not self.prompt.strip():
            raise UserError("the prompt is empty")
        if self.backbone not in BACKBONES:
            raise UserError(f"unknown backbone {self.backbone!r}; choose one of: {', '.join(BACKBONES)}")
        if self.guidance not in GUIDANCES:
            raise UserError(f"unknown guidance {self.guidance!r}; choose one of: {', '.join(GUIDANCES)}")
        if self.preset not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r}; choose one of: {', '.join(PRESETS)}")
        if self.steps <= 0:
            raise UserError(f"--steps must be positive, got {self.steps}")
        if self.render_size < 8 or any(s < 8 for _, s in self.resolution_schedule):
            raise UserError("render sizes must be at least 8 pixels")
        if self.checkpoint_every <= 0:
            raise UserError("checkpoint_every must be positive")
        if self.export.mesh not in MESH_KINDS:
            raise UserError(f"unknown --mesh {self.export.mesh!r}; choose one of: {', '.join(MESH_KINDS)}")
        if self.export.mesh_max_faces is not None and self.export.mesh_max_faces < 4:
            raise UserError(f"--mesh-faces must be at least 4, got {self.export.mesh_max_faces}")
        if self.background not in ("white", "black", "random"):
            raise UserError(f"unknown background {self.background!r}; choose white, black or random")
        if len(self.adam_betas) != 2 or not all(0.0 <= b < 1.0 for b in self.adam_betas):
            raise UserError(f"adam_betas must be two numbers in [0, 1), got {self.adam_betas}")
        if self.init_ply is not None:
            if self.backbone != "gs":
                raise UserError("--init-ply initialises 3D Gaussians; it needs --backbone gs")
            if not Path(self.init_ply).is_file():
                raise UserError(f"--init-ply: no such file: {self.init_ply}")
            if not 0.0 < self.init_ply_scale < float("inf"):
                raise UserError("init_ply_scale must be positive")
        gs = self.guidance_config.guidance_scale
        if gs is not None and not (0 < gs < math.inf):
            raise UserError(f"--cfg must be positive and finite, got {gs}")
        if not (isinstance(self.seed, int) and 0 <= self.seed <= MAX_SEED):
            raise UserError(f"--seed must be an integer from 0 to {MAX_SEED}, got {self.seed}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA device is available")
        try:
            self.cameras.validate()
        except ValueError as e:
            raise UserError(str(e)) from None


def preset_config(preset: str, backbone: str, guidance: str) -> GenerateConfig:
    """The defaults of a preset: `fast` is the CPU setting for the embedded prior; `paper` the reference settings
    (docs/algorithm.md, "Presets"). Method settings (CFG scale, learning rates) come from the method's own
    `presets` table, which wins over the backbone's common guidance settings; this function names no method."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    method = guidance_class(guidance)
    if preset == "fast":
        cfg = GenerateConfig(preset="fast", backbone=backbone, guidance=guidance, steps=400 if backbone == "gs" else 300, render_size=64)
        cfg.cameras = CameraSamplerConfig(views_per_step=4 if backbone == "gs" else 2)
        cfg.guidance_config = GuidanceConfig(**method.preset_defaults("fast", backbone))
        cfg.lambdas = {"sds": 1.0, "prior": 1.0, "sparsity": 0.0, "opacity": 0.0}
        cfg.gaussians = {"num_points": 1000, "max_gaussians": 3000, "densify_until": 300, "lr_means_steps": 400}
        cfg.nerf = {}
        cfg.checkpoint_every = 50
        return cfg
    # paper: SD 2.1-base on CUDA
    if backbone == "gs":  # the official lods-gs-embedding config (docs/algorithm.md lists each value and deviation)
        cfg = GenerateConfig(preset="paper", backbone="gs", guidance=guidance, steps=2500, render_size=512, device="cuda",
                             prior="stabilityai/stable-diffusion-2-1-base", background="black", adam_betas=[0.9, 0.999])
        cfg.cameras = CameraSamplerConfig(elevation_range=(-10.0, 45.0), distance_range=(2.5, 4.0), fov_range=(40.0, 70.0), views_per_step=8)
        cfg.guidance_config = GuidanceConfig(**{**dict(max_step_percent_annealed=0.55, anneal_start_step=500, anneal_end_step=501,
                                                       negative_prompt="a point cloud image"), **method.preset_defaults("paper", "gs")})
        cfg.gaussians = {"num_points": 4096, "init_radius": 0.8, "lr_means": 1.75e-4, "lr_means_final": 8.75e-5,
                         "lr_means_steps": 2500, "lr_opacities": 1e-2, "lr_colors": 1.25e-2, "densify_from": 300,
                         "densify_until": 1000, "densify_every": 100, "prune_screen_size": 20.0, "max_gaussians": 500_000}
        cfg.lambdas = {"sds": 1.0, "prior": 1.0, "sparsity": 1.0, "opacity": 0.0}
    else:
        cfg = GenerateConfig(preset="paper", backbone="nerf", guidance=guidance, steps=25000, render_size=256, device="cuda",
                             prior="stabilityai/stable-diffusion-2-1-base", resolution_schedule=[[10000, 512]], background="random")
        cfg.cameras = CameraSamplerConfig(elevation_range=(-10.0, 45.0), distance_range=(1.5, 2.0), fov_range=(40.0, 70.0), views_per_step=1)
        cfg.guidance_config = GuidanceConfig(**{**dict(max_step_percent_annealed=0.5, anneal_start_step=10000, anneal_end_step=10001,
                                                       negative_prompt=""), **method.preset_defaults("paper", "nerf")})
        cfg.lambdas = {"sds": 1.0, "prior": 1.0, "sparsity": 0.0, "opacity": 0.0}
    cfg.checkpoint_every = 1000
    return cfg


def render_size_at(cfg: GenerateConfig, step: int) -> int:
    size = cfg.render_size
    for at, s in sorted(cfg.resolution_schedule):
        if step >= at:
            size = s
    return size


def build_scene(cfg: GenerateConfig, device: torch.device) -> Scene3D:
    if cfg.backbone == "gs":
        from ..scenes.gaussians import GaussianConfig, GaussianScene
        from ..scenes.init_ply import scene_from_ply

        gcfg = from_dict(GaussianConfig, cfg.gaussians)
        if cfg.init_ply is not None:
            return scene_from_ply(cfg.init_ply, gcfg, scale=cfg.init_ply_scale, seed=cfg.seed).to(device)
        return GaussianScene(gcfg, seed=cfg.seed).to(device)
    from ..scenes.field import FieldConfig, RadianceField

    return RadianceField(from_dict(FieldConfig, cfg.nerf), seed=cfg.seed).to(device)


def _background(cfg: GenerateConfig, n: int, device) -> torch.Tensor:
    if cfg.background == "random":
        return torch.rand(n, 3, device=device)
    if cfg.background == "black":
        return torch.zeros(n, 3, device=device)
    return torch.ones(n, 3, device=device)


class _Checkpoint:
    """`out/checkpoints/last.safetensors`: scene, guidance state, optimizer and step, written atomically."""

    def __init__(self, out: Path):
        self.path = out / "checkpoints" / "last.safetensors"

    def save(self, step: int, scene: Scene3D, guidance, optimizer, history: list) -> None:
        tensors = {f"scene/{k}": v for k, v in scene.state_tensors().items()}
        tensors.update({f"guidance/{k}": v for k, v in guidance.state_dict().items() if _is_learned(guidance, k)})
        opt_t, opt_meta = optimizer_to_tensors(optimizer)
        tensors.update(opt_t)
        save_checkpoint(self.path, tensors, {"step": step, "optimizer": opt_meta, "history": history})

    def restore(self, scene: Scene3D, guidance, device, betas) -> tuple[int, list, torch.optim.Optimizer]:
        """Load the checkpoint into `scene` and `guidance`; returns (step, history, optimizer)."""
        tensors, meta = load_checkpoint(self.path)
        try:
            step, history = int(meta["step"]), list(meta["history"])
            scene.load_state_tensors({k[6:]: v.to(device) for k, v in tensors.items() if k.startswith("scene/")})
            guidance.load_state_dict({k[9:]: v.to(device) for k, v in tensors.items() if k.startswith("guidance/")},
                                     strict=False)
            optimizer = _build_optimizer(scene, guidance, betas)
            optimizer_from_tensors(optimizer, {k: v.to(device) for k, v in tensors.items()}, meta["optimizer"])
        except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as e:
            reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
            raise CorruptCheckpoint(f"{self.path} does not fit this run's config ({reason})") from None
        return step, history, optimizer


def _is_learned(guidance, key: str) -> bool:
    learned = {id(p) for g in guidance.param_groups() for p in g["params"]}
    named = dict(guidance.named_parameters())
    return key in named and id(named[key]) in learned


def _build_optimizer(scene: Scene3D, guidance, betas=(0.9, 0.99)) -> torch.optim.Optimizer:
    groups = scene.param_groups() + guidance.param_groups()
    return torch.optim.Adam(groups, betas=tuple(betas), eps=1e-15)


class LoopHooks:
    """Extension points of `run_generate` (image-to-3D is a thin layer over them); the defaults are text-to-3D."""

    def build_guidance(self, cfg: GenerateConfig, prior):
        return build_guidance(cfg.guidance, prior, cfg.prompt, cfg.guidance_config)

    def start(self, cfg: GenerateConfig, out: Path, resume: bool) -> None:
        """Called once the run folder and config.yaml exist, before the first step."""

    def step(self, cfg: GenerateConfig, scene: Scene3D, guidance, cams, size: int, step: int) -> tuple[dict, dict]:
        """Render this step's views and return (rendered, losses); `loss_*` terms are weighted by cfg.lambdas."""
        rendered = scene.render(cams, size, background=_background(cfg, len(cams), cams.c2w.device))
        return rendered, guidance(rendered["rgb"], cams, step)

    def metrics(self, cfg: GenerateConfig, scene: Scene3D, prior) -> dict:
        """Extra entries of metrics.json, computed on the final scene (in eval mode, under no_grad)."""
        return {}


def run_generate(cfg: GenerateConfig, resume: bool = False, progress=None, hooks: LoopHooks | None = None,
                 prior=None) -> dict:
    """Optimise a 3D scene for `cfg.prompt`; writes config, checkpoints, exports and metrics into `cfg.out`.
    `prior`: an already-loaded Prior for `cfg.prior` on `cfg.device` (a batch loads it once); None: load it.

    The folder is a locked `RunDir`. `resume=True` continues its last checkpoint (a folder stopped before its first
    checkpoint starts over) and refuses a config that contradicts the recorded one, except for `steps`."""
    hooks = hooks if hooks is not None else LoopHooks()
    cfg.validate()
    run = RunDir(cfg.out, task=getattr(cfg, "task", "generate"))
    with StopSignals() as signals, run.open(resume=resume, config=cfg, recorded_config=_recorded_config):
        return _run(cfg, run, signals, progress, hooks, prior)


def _recorded_config(path: Path):
    """The config of a run folder written before run.json existed, or None."""
    return load_run_config(path) if (Path(path) / "config.yaml").exists() else None


def _run(cfg: GenerateConfig, run: RunDir, signals: StopSignals, progress, hooks: LoopHooks, prior=None) -> dict:
    from ..priors.prior import Prior

    out = run.path
    ckpt = _Checkpoint(out)
    device = torch.device(cfg.device)
    if prior is None:
        prior = Prior.load(cfg.prior, device=device)
    prior.check_prompt(cfg.prompt)

    torch.manual_seed(cfg.seed)
    scene = build_scene(cfg, device)
    guidance = hooks.build_guidance(cfg, prior)
    start, history, before = 0, [], 0.0
    resumed = run.has_checkpoint()
    if resumed:
        start, history, optimizer = ckpt.restore(scene, guidance, device, cfg.adam_betas)
        if start > cfg.steps:
            raise UserError(f"the run in {out} is already at step {start}; --steps {cfg.steps} would shorten it: give "
                            f"--steps {start} or more (or leave --steps out)")
        before = float(run.progress().get("seconds", 0.0))
        signals.step = start
    else:
        optimizer = _build_optimizer(scene, guidance, cfg.adam_betas)
    atomic_write_text(out / "config.yaml", dump_yaml(cfg))
    run.record(cfg)
    hooks.start(cfg, out, resumed)

    clock = Stopwatch(before)

    def kept() -> str:
        return (f"the checkpoint at step {signals.step} is kept" if signals.step is not None
                else "nothing was checkpointed, so the same command starts over")

    steplog = StepLog(history, device, progress, cfg.steps, kept)

    def checkpoint(step: int) -> None:
        steplog.flush()
        ckpt.save(step, scene, guidance, optimizer, history)
        signals.step = step
        run.record(cfg, progress={"step": step, "seconds": clock.total()})

    lambdas = {f"loss_{k}": float(v) for k, v in cfg.lambdas.items()}
    signals.deferred = True  # a signal from here on stops the loop at a step boundary, with a checkpoint
    try:
        for step in range(start, cfg.steps):
            if signals.requested is not None:
                checkpoint(step)
                raise Interrupted(step)
            torch.manual_seed(cfg.seed * 1_000_003 + step)
            cams = sample_cameras(cfg.cameras).to(device)
            size = render_size_at(cfg, step)
            rendered, losses = hooks.step(cfg, scene, guidance, cams, size, step)
            losses.update(scene.regularizers(rendered, step))
            terms = {k: v for k, v in losses.items() if k.startswith("loss_")}
            total = sum(lambdas.get(k, 1.0 if k in ("loss_sds",) else 0.0) * v for k, v in terms.items())
            save_now = (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps
            steplog.add(step + 1, terms, total, force=save_now)  # checks the loss (CPU: every step, before the update)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            scene.after_step(step, rendered, optimizer)
            if save_now:
                checkpoint(step + 1)
    finally:
        signals.deferred = False
    if signals.requested is not None:  # arrived during the last step: its checkpoint is written
        raise Interrupted(cfg.steps)
    seconds = clock.total()
    metrics = finish(cfg, scene, prior, history, seconds, start, extra_metrics=hooks.metrics)
    run.record(cfg, progress={"step": cfg.steps, "seconds": seconds, "finished": True})
    return metrics


def finish(cfg: GenerateConfig, scene: Scene3D, prior, history: list, seconds: float, start: int = 0,
           extra_metrics=None) -> dict:
    """Write the exports and metrics.json of a finished run; `extra_metrics(cfg, scene, prior)` adds entries."""
    from ..export.assets import export_mesh
    from ..export.ply import save_ply
    from ..export.video import render_turntable, save_views_grid

    out = Path(cfg.out)
    scene.eval()
    outputs = {}
    with torch.no_grad():
        if cfg.backbone == "gs":
            save_ply(scene, out / "model.ply")
            outputs["ply"] = "model.ply"
        outputs.update(export_mesh(scene, out, cfg.export))
        white = torch.ones(3, device=next(scene.parameters()).device)
        video = render_turntable(scene, out / "turntable.mp4", size=cfg.export.turntable_size, frames=cfg.export.turntable_frames,
                                 background=white)
        outputs["turntable"] = Path(video).name
        save_views_grid(scene, out / "views.png", size=cfg.export.views_size, n=cfg.export.eval_views, background=white)
        outputs["views"] = "views.png"
    last = history[-10:]
    final_losses = {k: sum(h[k] for h in last if k in h) / max(1, sum(1 for h in last if k in h))
                    for k in {k for h in last for k in h if k.startswith("loss_")}}
    metrics = {
        "prompt": cfg.prompt,
        "backbone": cfg.backbone,
        "guidance": cfg.guidance,
        "steps": cfg.steps,
        "seconds": seconds,
        "seconds_per_step": seconds / max(1, cfg.steps - start),
        "resumed_from_step": start,
        "final_losses": final_losses,
        "outputs": outputs,
        "history": history,
    }
    truth = ground_truth_metrics(cfg, scene, prior)
    if truth is not None:
        metrics["ground_truth"] = truth
    if extra_metrics is not None:
        with torch.no_grad():
            metrics.update(extra_metrics(cfg, scene, prior))
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def ground_truth_metrics(cfg: GenerateConfig, scene: Scene3D, prior) -> dict | None:
    """With the embedded prior and a world caption, score the result against the world's 3D truth."""
    from ..world.captions import parse_spec
    from ..world.scene import PromptError

    if prior.vocabulary is None:
        return None
    try:
        parse_spec(cfg.prompt)  # specified or not ("a cube"): the truth is the set of its completions
    except PromptError:
        return None
    from ..evaluate.world_eval import evaluate_against_truth

    return evaluate_against_truth(scene_render_fn(scene), cfg.prompt, n_views=cfg.export.eval_views, prior=prior)


def scene_render_fn(scene: Scene3D):
    """`render_fn(cameras, size)` over a white background, on the scene's device, returning CPU tensors."""

    def render_fn(cameras, size):
        device = next(scene.parameters()).device
        cams = cameras.to(device)
        with torch.no_grad():
            r = scene.render(cams, size, background=torch.ones(len(cams), 3, device=device))
        return {k: v.cpu() for k, v in r.items() if isinstance(v, torch.Tensor)}

    return render_fn


def load_run_config(out: Path) -> GenerateConfig:
    """The config.yaml of a run folder; a missing, malformed or foreign one is a UserError."""
    path = Path(out) / "config.yaml"
    if not path.exists():
        raise UserError(f"{out} is not a run folder (no config.yaml)")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a run config (not a mapping)")
    try:
        if isinstance(data.get("cameras"), dict):
            data["cameras"] = {k: tuple(v) if isinstance(v, list) else v for k, v in data["cameras"].items()}
        if data.get("task") == "image-to-3d":  # written by `lods image-to-3d`
            from .image_to_3d import ImageTo3DConfig

            cfg = from_dict(ImageTo3DConfig, data)
        else:
            cfg = from_dict(GenerateConfig, data)
        for name, kind in (("prompt", str), ("backbone", str), ("guidance", str), ("steps", int), ("seed", int)):
            if not isinstance(getattr(cfg, name), kind) or isinstance(getattr(cfg, name), bool):
                raise UserError(f"`{name}` should be a {kind.__name__}, not {getattr(cfg, name)!r}")
        return cfg
    except (TypeError, ValueError, AttributeError) as e:
        if isinstance(e, UserError):
            raise UserError(f"{path}: {e}") from None
        raise UserError(f"{path} is not a run config ({str(e).splitlines()[0][:120]})") from None
