"""The 2D playground: optimise one image (or a few particles) with a guidance method and a prior.

The optimised tensor lives in the prior's model space: the latent for a latent prior, [-1, 1] pixels for a
pixel-space prior. With `space="pixels"` a latent prior's run optimises the picture instead (its logits: the
picture is their sigmoid, in [0, 1] like a 3D run's renders, encoded by the VAE at every step), so the latent stays
one the encoder can give. One optimizer step updates it and the guidance's learnable parts together. `out` is a locked
`RunDir`: it must be new, empty, or an earlier distill2d result (never another command's folder). Outputs are
written to a staging folder inside `out` and moved into place at the end, so a failed run leaves no partial
outputs and an earlier result is only replaced by a finished one. The final tensor (in pixel space: the picture)
is kept as `image.safetensors`, so `init` can start a run exactly where another ended (or from any picture).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..config import dump_yaml
from ..evaluate.set_metrics import prior_denoising_loss
from ..errors import Diverged, UserError
from ..runs import RunDir, StopSignals
from ..guidance import GuidanceConfig, build_guidance, guidance_class
from ..evaluate.learned_fit import learned_fit, world_truth_images
from ..utils.io import atomic_write_json, atomic_write_text


PIXEL_EPS = 1e-4  # a picture's values are clamped to [eps, 1 - eps] before their logits are taken
OUTPUTS = frozenset({"image.png", "image.safetensors", "metrics.json", "config.yaml", "loss.png", "snapshots"})


def preset_guidance_config(guidance: str, preset: str = "fast", keep_scale: bool = False) -> GuidanceConfig:
    """The method's settings in `preset` (learning rates of its learnable part, its options) for the playground.
    Without `keep_scale` the preset's CFG scale is left out: the playground's scale is then `guidance_scale` or the
    method's default for the prior (LODS 1000)."""
    from .run_config import PRESETS

    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    settings = {k: v for k, v in guidance_class(guidance).preset_defaults(preset).items() if keep_scale or k != "guidance_scale"}
    return GuidanceConfig(**settings)


@dataclass
class Distill2DConfig:
    prompt: str = ""
    guidance: str = "lods-embedding"
    prior: str | None = None  # a diffusers folder or hub id; None: the embedded prior
    steps: int = 500
    guidance_scale: float | None = None  # None: the method's default for the prior
    seed: int = 0
    device: str = "cpu"
    out: str = "runs/distill2d"
    lr: float = 3e-2  # Adam on the latent / pixels
    batch: int = 1  # particles
    log_every: int = 100  # save snapshots/step_XXXXX.png every this many steps (0: none)
    init: str | None = None  # start from: a picture (encoded), an image.safetensors, or a distill2d run folder
    space: str = "model"  # the optimised tensor: "model" (the prior's space) or "pixels" (a latent prior's picture)
    guidance_config: GuidanceConfig = field(default_factory=GuidanceConfig)

    def validate(self) -> None:
        if not self.prompt.strip():
            raise UserError("the prompt is empty")
        guidance_class(self.guidance)
        if self.steps <= 0:
            raise UserError(f"steps must be positive, got {self.steps}")
        if not 0 <= self.seed < 2**63:
            raise UserError(f"--seed must be an integer from 0 to 2**63 - 1, got {self.seed}")
        if self.guidance_scale is not None and not 0 < self.guidance_scale < float("inf"):
            raise UserError(f"the guidance (CFG) scale must be positive and finite, got {self.guidance_scale}")
        if not self.lr > 0:
            raise UserError(f"lr must be positive, got {self.lr}")
        if self.batch <= 0:
            raise UserError(f"batch must be positive, got {self.batch}")
        if self.log_every < 0:
            raise UserError(f"log_every must be >= 0, got {self.log_every}")
        if self.space not in ("model", "pixels"):
            raise UserError(f"space must be 'model' or 'pixels', got {self.space!r}")
        if self.init is not None and not Path(self.init).exists():
            raise UserError(f"the init image {self.init} was not found")
        self.guidance_config.validate()


def initial_image(path: str, prior, shape: tuple, pixels: bool = False) -> torch.Tensor:
    """The starting tensor (`shape`; model space, or with `pixels` a [0, 1] picture) from `path`: a distill2d run
    folder or its image.safetensors (the exact tensor a run ended with), or a picture (resized, and encoded unless
    `pixels`). One image serves every particle."""
    source = Path(path)
    if source.is_dir():
        source = source / "image.safetensors"
        if not source.is_file():
            raise UserError(f"{path} holds no image.safetensors (not a finished distill2d run)")
    try:
        if source.suffix == ".safetensors":
            image = load_file(str(source)).get("image")
            if image is None:
                raise UserError(f"{source} holds no tensor named 'image'")
        else:
            from PIL import Image

            with Image.open(source) as opened:
                rgb = np.asarray(opened.convert("RGB"), dtype=np.float32) / 255.0
            picture = torch.from_numpy(rgb).permute(2, 0, 1)[None]
            with torch.no_grad():
                if pixels:
                    image = F.interpolate(picture, shape[-2:], mode="bilinear", align_corners=False)
                else:
                    image = prior.encode_images(picture).float().cpu()
    except (OSError, ValueError, SafetensorError) as exc:
        raise UserError(f"cannot read the init image {path}: {exc}") from None
    if image.dim() != 4 or tuple(image.shape[1:]) != tuple(shape[1:]) or image.shape[0] not in (1, shape[0]):
        raise UserError(f"the init image {path} has shape {tuple(image.shape)}; this prior and batch need "
                        f"{tuple(shape)} (or one image)")
    return image.expand(shape).clone().to(prior.device)


def saturation(images01: torch.Tensor) -> torch.Tensor:
    """Mean HSV saturation, (max - min) / max per pixel (0 for black)."""
    hi = images01.amax(dim=1)
    lo = images01.amin(dim=1)
    return torch.where(hi > 0, (hi - lo) / hi.clamp_min(1e-8), torch.zeros_like(hi)).mean()


def _save_png(path: Path, images01: torch.Tensor) -> None:
    from PIL import Image

    tiles = (images01.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    Image.fromarray(np.concatenate(list(tiles), axis=1)).save(path)


def _save_loss_plot(path: Path, history: list[dict]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    steps = [h["step"] for h in history]
    for key in sorted({k for h in history for k in h if k.startswith("loss_")}):
        ax.plot(steps, [h.get(key, float("nan")) for h in history], label=key)
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def run_distill2d(cfg: Distill2DConfig, progress=None, prior=None) -> dict:
    """Run the playground; write image.png, metrics.json, config.yaml, loss.png (+ snapshots/) into `cfg.out`.

    `progress(step, total, logs)` is called after every step. `prior` (optional) reuses a loaded Prior.
    Returns the metrics (as written to metrics.json) plus `out`.
    """
    cfg.validate()
    from ..priors.prior import Prior

    device = torch.device(cfg.device)
    if prior is None:
        prior = Prior.load(cfg.prior, device=device)
    gcfg = dataclasses.replace(cfg.guidance_config)
    if cfg.guidance_scale is not None:
        gcfg.guidance_scale = cfg.guidance_scale
    guidance = build_guidance(cfg.guidance, prior, cfg.prompt, gcfg)
    resolved = dataclasses.replace(
        cfg, prior=prior.source, guidance_scale=guidance.guidance_scale,
        guidance_config=dataclasses.replace(
            gcfg, guidance_scale=guidance.guidance_scale, negative_prompt=guidance.prompts.negative_prompt
        ),
    )

    g = torch.Generator(device=prior.device).manual_seed(cfg.seed)
    pixels = cfg.space == "pixels" and prior.is_latent
    if pixels:
        shape = (cfg.batch, 3, prior.image_size, prior.image_size)
    else:
        shape = (cfg.batch, prior.latent_channels, prior.latent_size, prior.latent_size)
    if cfg.init is not None:
        init = initial_image(cfg.init, prior, shape, pixels)
    elif pixels:
        init = torch.rand(shape, generator=g, device=g.device)
    elif prior.is_latent:
        init = torch.randn(shape, generator=g, device=g.device)
    else:
        init = torch.rand(shape, generator=g, device=g.device) * 2.0 - 1.0
    if pixels:  # the optimised tensor is the picture's logits
        init = torch.logit(init.clamp(PIXEL_EPS, 1.0 - PIXEL_EPS))
    z = torch.nn.Parameter(init.to(prior.device))
    groups = [{"params": [z], "lr": cfg.lr, "name": "image", "weight_decay": 0.0}] + guidance.param_groups()
    optimizer = torch.optim.AdamW(groups)  # per-group weight decay; 0 for the image (plain Adam)

    run = RunDir(cfg.out, task="distill2d")
    with run.open(replaces=OUTPUTS), StopSignals("interrupted; no output was written (distill2d has no checkpoints)"):
        return _optimise(cfg, resolved, run, prior, guidance, z, g, optimizer, progress, pixels)


def _optimise(cfg, resolved, run, prior, guidance, z, g, optimizer, progress, pixels=False) -> dict:
    to_model = (lambda u: prior.encode_images(torch.sigmoid(u))) if pixels else (lambda x: x)
    to_picture = torch.sigmoid if pixels else prior.decode
    out = run.path
    tmp = out / f".staging.{uuid.uuid4().hex[:8]}.tmp"  # a temp name: removed by the next run if this one is killed
    tmp.mkdir()
    try:
        history: list[dict] = []
        for step in range(cfg.steps):
            losses = guidance.forward_latents(to_model(z), None, step, generator=g)
            total = sum(v for k, v in losses.items() if k.startswith("loss_"))
            if not torch.isfinite(total):
                raise Diverged(f"the loss became {float(total.detach())} at step {step}; lower the learning rate or the CFG scale")
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            logs = {k: float(v.detach()) for k, v in losses.items() if k.startswith("loss_")}
            logs["t"] = float(losses["t"].float().mean())
            logs["grad_norm"] = float(losses["grad_norm"])
            history.append({"step": step, **logs})
            if cfg.log_every and (step + 1) % cfg.log_every == 0 and step + 1 < cfg.steps:
                with torch.no_grad():
                    (tmp / "snapshots").mkdir(exist_ok=True)
                    _save_png(tmp / "snapshots" / f"step_{step + 1:05d}.png", to_picture(z.detach()))
            if progress is not None:
                progress(step + 1, cfg.steps, logs)

        with torch.no_grad():
            images = to_picture(z.detach())
            z_model = to_model(z.detach())
        metrics: dict = {
            "prompt": cfg.prompt,
            "guidance": cfg.guidance,
            "guidance_scale": guidance.guidance_scale,
            "steps": cfg.steps,
            "history": history,
            "final": {k: v for k, v in history[-1].items() if k.startswith("loss_")},
            "final_loss": sum(v for k, v in history[-1].items() if k.startswith("loss_")),
            "saturation": float(saturation(images)),
            "mean_rgb": [float(c) for c in images.mean(dim=(0, 2, 3))],
        }
        if prior.kind == "world":
            metrics["prior_denoising_loss"] = prior_denoising_loss(prior, z_model, cfg.prompt, seed=cfg.seed)
            fit = learned_fit(guidance, z_model, world_truth_images(cfg.prompt, prior), seed=cfg.seed)
            if fit is not None:
                metrics["learned_fit"] = fit
        _save_png(tmp / "image.png", images)
        kept = images if pixels else z.detach()  # the model-space tensor, or the picture
        save_file({"image": kept.float().cpu().contiguous()}, str(tmp / "image.safetensors"))
        atomic_write_json(tmp / "metrics.json", metrics)
        atomic_write_text(tmp / "config.yaml", dump_yaml(resolved))
        _save_loss_plot(tmp / "loss.png", history)
        run.record(resolved, progress={"step": cfg.steps, "finished": True})
        _move_outputs(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {**metrics, "out": str(out)}


def _move_outputs(tmp: Path, out: Path) -> None:
    """Move the finished outputs from `tmp` into `out`, replacing an earlier distill2d result (metrics.json last)."""
    if (out / "snapshots").is_dir():
        shutil.rmtree(out / "snapshots")
    names = sorted(p.name for p in tmp.iterdir())
    for name in sorted(names, key=lambda n: n == "metrics.json"):
        os.replace(tmp / name, out / name)


__all__ = ["Distill2DConfig", "prior_denoising_loss", "run_distill2d", "saturation"]
