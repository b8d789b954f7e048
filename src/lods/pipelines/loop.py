"""The one optimisation loop of text-to-3D and image-to-3D: prior, guidance and 3D backbone wired together, with
checkpoints, exact resume and the run's exports; a task changes it only through `LoopHooks`.

Every step reseeds the global torch RNG from (seed, step), so cameras, timesteps, noise and densification
draw the same numbers whether the run was interrupted or not; a resumed run reaches the same result.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import dump_yaml
from ..errors import ConfigError, Interrupted, UserError
from ..guidance import build_guidance
from ..render.cameras import sample_cameras
from ..runs import RENAMED_KEYS, RunDir, StopSignals, Stopwatch
from ..scenes.base import Scene3D
from ..utils.io import (CorruptCheckpoint, atomic_write_json, atomic_write_text, load_checkpoint, optimizer_from_tensors,
                        optimizer_to_tensors, save_checkpoint)
from .run_config import GenerateConfig, load_run_config
from .step_log import StepLog

# loss names of the history of runs before issue 12 (see runs.RENAMED_KEYS)
RENAMED_LOSSES = {old.replace("lambdas.", "loss_"): new.replace("lambdas.", "loss_") for old, new in RENAMED_KEYS.items()}


def render_size_at(cfg: GenerateConfig, step: int) -> int:
    size = cfg.render_size
    for at, s in sorted(cfg.resolution_schedule):
        if step >= at:
            size = s
    return size


def build_scene(cfg: GenerateConfig, device: torch.device) -> Scene3D:
    scene_cfg = cfg.scene_config()
    if cfg.backbone == "gs":
        from ..scenes.gaussians import GaussianScene
        from ..scenes.init_ply import scene_from_ply

        if cfg.init_ply is not None:
            return scene_from_ply(cfg.init_ply, scene_cfg, scale=cfg.init_ply_scale, seed=cfg.seed).to(device)
        return GaussianScene(scene_cfg, seed=cfg.seed).to(device)
    from ..scenes.field import RadianceField

    return RadianceField(scene_cfg, seed=cfg.seed).to(device)


def background_colors(cfg: GenerateConfig, n: int, device) -> torch.Tensor:
    """(n, 3) flat background colours of the training views (`cfg.background`)."""
    if cfg.background == "random":
        return torch.rand(n, 3, device=device)
    if cfg.background == "black":
        return torch.zeros(n, 3, device=device)
    return torch.ones(n, 3, device=device)


def weighted_total(terms: dict[str, torch.Tensor], lambdas: dict[str, float]) -> torch.Tensor:
    """Σ λ_X · loss_X over the `loss_X` terms in their order; a term without its λ is a ConfigError."""
    for name in terms:
        if name not in lambdas:
            raise ConfigError(f"{name} has no weight: set lambdas.{name.removeprefix('loss_')}")
    return sum(lambdas[k] * v for k, v in terms.items())


class Checkpoint:
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
            step = int(meta["step"])
            history = [{RENAMED_LOSSES.get(k, k): v for k, v in h.items()} for h in meta["history"]]
            scene.load_state_tensors({k[6:]: v.to(device) for k, v in tensors.items() if k.startswith("scene/")})
            guidance.load_state_dict({k[9:]: v.to(device) for k, v in tensors.items() if k.startswith("guidance/")},
                                     strict=False)
            optimizer = build_optimizer(scene, guidance, betas)
            optimizer_from_tensors(optimizer, {k: v.to(device) for k, v in tensors.items()}, meta["optimizer"])
        except (KeyError, ValueError, RuntimeError, TypeError, IndexError, AttributeError) as e:
            reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
            raise CorruptCheckpoint(f"{self.path} does not fit this run's config ({reason})") from None
        return step, history, optimizer


def _is_learned(guidance, key: str) -> bool:
    learned = {id(p) for g in guidance.param_groups() for p in g["params"]}
    named = dict(guidance.named_parameters())
    return key in named and id(named[key]) in learned


def build_optimizer(scene: Scene3D, guidance, betas=(0.9, 0.99)) -> torch.optim.Optimizer:
    groups = scene.param_groups() + guidance.param_groups()
    return torch.optim.Adam(groups, betas=tuple(betas), eps=1e-15)


class LoopHooks:
    """Extension points of `run_loop`; the defaults are text-to-3D's."""

    def build_guidance(self, cfg: GenerateConfig, prior):
        return build_guidance(cfg.guidance, prior, cfg.prompt, cfg.guidance_config)

    def start(self, cfg: GenerateConfig, out: Path, resume: bool) -> None:
        """Called once the run folder and config.yaml exist, before the first step."""

    def step(self, cfg: GenerateConfig, scene: Scene3D, guidance, cams, size: int, step: int) -> tuple[dict, dict]:
        """Render this step's views and return (rendered, losses); `loss_*` terms are weighted by cfg.lambdas."""
        rendered = scene.render(cams, size, background=background_colors(cfg, len(cams), cams.c2w.device))
        return rendered, guidance(rendered["rgb"], cams, step)

    def metrics(self, cfg: GenerateConfig, scene: Scene3D, prior) -> dict:
        """Extra entries of metrics.json, computed on the final scene (in eval mode, under no_grad)."""
        return {}


def run_loop(cfg: GenerateConfig, hooks: LoopHooks, resume: bool = False, progress=None, prior=None) -> dict:
    """Optimise a 3D scene for `cfg`; writes config, checkpoints, exports and metrics into `cfg.out`.
    `prior`: an already-loaded Prior for `cfg.prior` on `cfg.device` (a batch loads it once); None: load it.

    `cfg` is validated before the folder is touched. The folder is a locked `RunDir`: `resume=True` continues its
    last checkpoint (a folder stopped before its first checkpoint starts over) and refuses a config that
    contradicts the recorded one, except for `steps`."""
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
    ckpt = Checkpoint(out)
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
        optimizer = build_optimizer(scene, guidance, cfg.adam_betas)
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
            if signals.poll():
                checkpoint(step)
                raise Interrupted(step)
            torch.manual_seed(cfg.seed * 1_000_003 + step)
            cams = sample_cameras(cfg.cameras).to(device)
            size = render_size_at(cfg, step)
            rendered, losses = hooks.step(cfg, scene, guidance, cams, size, step)
            losses.update(scene.regularizers(rendered, step))
            terms = {k: v for k, v in losses.items() if k.startswith("loss_")}
            total = weighted_total(terms, lambdas)
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
    metrics = finish(cfg, scene, prior, history, seconds, start, extra_metrics=hooks.metrics, guidance=guidance)
    run.record(cfg, progress={"step": cfg.steps, "seconds": seconds, "finished": True})
    return metrics


def finish(cfg: GenerateConfig, scene: Scene3D, prior, history: list, seconds: float, start: int = 0,
           extra_metrics=None, guidance=None) -> dict:
    """Write the exports and metrics.json of a finished run; `extra_metrics(cfg, scene, prior)` adds entries.
    With a world prompt and a learned branch (`guidance`), `learned_fit` says whether that branch fits the renders."""
    from ..export.assets import export_mesh
    from ..scenes.ply import save_ply
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
        "seconds_per_step": seconds / max(1, cfg.steps),  # seconds count every step, across resumes
        "resumed_from_step": start,
        "final_losses": final_losses,
        "outputs": outputs,
        "history": history,
    }
    truth = ground_truth_metrics(cfg, scene, prior)
    if truth is not None:
        metrics["ground_truth"] = truth
        fit = learned_branch_fit(cfg, scene, prior, guidance)
        if fit is not None:
            metrics["learned_fit"] = fit
    if extra_metrics is not None:
        with torch.no_grad():
            metrics.update(extra_metrics(cfg, scene, prior))
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def learned_branch_fit(cfg: GenerateConfig, scene: Scene3D, prior, guidance) -> dict | None:
    """The learned branch's loss on the result's evaluation views against the frozen prior's on the prompt's clean
    truth renders (evaluate/learned_fit.py); None without a learned unconditional branch."""
    from ..evaluate.learned_fit import learned_fit, world_truth_images
    from ..render.cameras import evaluation_cameras

    if guidance is None or not hasattr(guidance, "learned_unconditional"):
        return None
    with torch.no_grad():
        rgb = scene_render_fn(scene)(evaluation_cameras(cfg.export.eval_views), prior.image_size)["rgb"]
        return learned_fit(guidance, prior.encode_images(rgb), world_truth_images(cfg.prompt, prior), seed=cfg.seed)


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
