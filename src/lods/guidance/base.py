"""The guidance interface: rendered images (+ cameras, step) in, named losses and diagnostics out.

Every distillation loss is an MSE to a detached target, `0.5 * sum((z - stopgrad(z - grad))^2) / B`, whose
gradient with respect to `z` is `grad / B` (docs/algorithm.md). Learnable parts (an embedding, a LoRA) are exposed
as optimizer groups and trained by `loss_learned` in the same optimizer step as the scene; they are registered
on the guidance module (LoRA tensors too, though they live in the prior's UNet), so its state_dict holds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import UserError
from .prompts import PromptEmbeddings, perp_neg_combine, perp_neg_embeddings
from .schedules import sample_timesteps, timestep_range


@dataclass
class GuidanceConfig:
    guidance_scale: float | None = None  # CFG scale s; None: the prior's or the method's default; inf allowed (LODS)
    min_step_percent: float = 0.02
    max_step_percent: float = 0.98
    max_step_percent_annealed: float | None = None  # max t fraction reached at anneal_end_step (None: no annealing)
    anneal_start_step: int = 0
    anneal_end_step: int = 0  # <= anneal_start_step: a jump at anneal_start_step
    view_dependent_prompting: bool = True
    grad_clip: float | None = None  # clamp each element of grad to ±grad_clip (off by default)
    negative_prompt: str | None = None  # None: the prior's default ("" for SD and the embedded prior)
    embedding_lr: float = 1e-4  # LODS-embedding (docs/algorithm.md: 1e-5 NeRF, 1e-4 3DGS and 2D, 1e-3 image-to-3D)
    lora_lr: float = 1e-5  # LODS-LoRA (5e-7 in 3D, 1e-6..1e-5 in 2D)
    vsd_lr: float = 1e-4  # VSD's LoRA and camera MLP
    weight_decay: float = 0.0
    lora_rank: int = 4
    lora_targets: str = "attention"  # LoRA layers (LODS-LoRA, VSD): "attention" (the reference) or "all" (+ ResNet convs)
    lora_scale_uncond: float = 0.5  # LODS-LoRA: adapter scale of the learned unconditional branch
    camera_dropout: float = 0.1  # VSD: probability of dropping the camera (for the whole batch) while training the LoRA
    learned_draws: int = 1  # LODS: (t', ε') draws per step and image for loss_learned (their mean); >1 costs a bigger pass
    shared_draw: bool = False  # LODS: loss_learned reuses the distillation draw (t, ε): one grad-enabled pass serves both
    learned_warmup: int = 0  # LODS: for the first N steps only the learned branch trains; the result gets no gradient
    learned_grad_scale: float | None = None  # backward scale of the learnable part's loss (None: 1024 for fp16, else 1)
    perp_neg: bool = False  # Perp-Neg: the other views' prompts as negatives, their perpendicular part (prompts.py)
    perp_neg_scale: float = 1.0  # multiplies threestudio's Perp-Neg weights (ScaleDreamer's ASD: 0.5)
    method_options: dict = field(default_factory=dict)  # the method's own settings: fields of its `Options` dataclass

    def validate(self) -> None:
        if not 0.0 <= self.min_step_percent < self.max_step_percent <= 1.0:
            raise UserError("need 0 <= min_step_percent < max_step_percent <= 1")
        if self.max_step_percent_annealed is not None and not self.min_step_percent < self.max_step_percent_annealed <= 1.0:
            raise UserError("max_step_percent_annealed must lie in (min_step_percent, 1]")
        if self.guidance_scale is not None and not self.guidance_scale > 0:
            raise UserError(f"the guidance (CFG) scale must be positive, got {self.guidance_scale}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise UserError("grad_clip must be positive (or None)")
        for name in ("embedding_lr", "lora_lr", "vsd_lr"):
            if not getattr(self, name) > 0:
                raise UserError(f"{name} must be positive")
        if self.lora_rank < 1:
            raise UserError("lora_rank must be at least 1")
        if self.learned_draws < 1:
            raise UserError(f"learned_draws must be at least 1, got {self.learned_draws}")
        if self.learned_warmup < 0:
            raise UserError(f"learned_warmup must be >= 0, got {self.learned_warmup}")
        if self.shared_draw and self.learned_draws != 1:
            raise UserError("shared_draw reuses the distillation draw: it needs learned_draws = 1")
        if self.lora_targets not in ("attention", "all"):
            raise UserError(f"lora_targets must be 'attention' or 'all', got {self.lora_targets!r}")
        if not 0.0 <= self.camera_dropout < 1.0:
            raise UserError("camera_dropout must lie in [0, 1)")
        if self.learned_grad_scale is not None and not (0 < self.learned_grad_scale < float("inf")):
            raise UserError("learned_grad_scale must be positive and finite (or None)")
        if not 0.0 <= self.perp_neg_scale < float("inf"):
            raise UserError("perp_neg_scale must be non-negative and finite")
        if self.perp_neg and not self.view_dependent_prompting:
            raise UserError("perp_neg needs view_dependent_prompting (its negatives are the other views' prompts)")
        if not isinstance(self.method_options, dict):
            raise UserError("method_options must be a mapping of the method's own settings")


def distillation_loss(z: torch.Tensor, grad: torch.Tensor, clip: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`0.5 * sum((z - stopgrad(z - grad))^2) / B`: d loss / dz = grad / B. Returns (loss, the grad used)."""
    grad = grad.detach().float()  # a non-finite gradient makes the loss non-finite: the caller stops (Diverged)
    if clip is not None:
        grad = grad.clamp(-clip, clip)
    target = (z - grad).detach()
    return 0.5 * ((z - target) ** 2).sum() / z.shape[0], grad


class Guidance(nn.Module):
    """Base class: holds the prior (not as a submodule), the prompt embeddings and the config."""

    name = "guidance"
    default_guidance_scale: float | None = None  # None: the method uses no CFG scale
    lr_field: str | None = None  # the GuidanceConfig field holding the learnable part's learning rate
    # The method's own settings in each preset, as GuidanceConfig fields, keyed "preset" or "preset/backbone"
    # (the latter wins). A subclass's entries extend (and override) its parents'. Read through `preset_defaults`.
    presets: dict[str, dict] = {}
    Options: type | None = None  # a dataclass of the method's own settings, read from config.method_options
    difference_gradient = False  # the gradient is a plain score difference (image-to-3D scales it up to SDS's size)
    adds_adapter = False  # the method adds a LoRA adapter to the prior's UNet
    loss_names: tuple[str, ...] = ("distill",)  # the `loss_*` terms forward returns (the run weighs each by its λ)

    @classmethod
    def preset_defaults(cls, preset: str, backbone: str | None = None) -> dict:
        """GuidanceConfig fields this method sets in `preset` (for `backbone`), merged along the class hierarchy."""
        merged: dict = {}
        for klass in reversed(cls.__mro__):
            table = klass.__dict__.get("presets", {})
            merged.update(table.get(preset, {}))
            if backbone is not None:
                merged.update(table.get(f"{preset}/{backbone}", {}))
        return merged

    def __init__(self, prior, prompt: str, config: GuidanceConfig | None = None):
        super().__init__()
        config = config or GuidanceConfig()
        config.validate()
        prior.check_prompt(prompt)
        negative = prior.default_negative_prompt if config.negative_prompt is None else config.negative_prompt
        prior.check_prompt(negative, allow_empty=True)
        self.prior = prior
        self.config = config
        self.guidance_scale = self.resolve_guidance_scale(prior, config)
        self.lr: float | None = getattr(config, self.lr_field) if self.lr_field else None
        self.prompts = PromptEmbeddings(prior, prompt, negative, config.view_dependent_prompting)
        self.options = self.parse_options(config.method_options)

    @classmethod
    def parse_options(cls, options: dict):
        """The method's `Options` from `method_options` (unknown keys are a UserError); None without `Options`."""
        from ..config import from_dict

        if cls.Options is None:
            if options:
                raise UserError(f"{cls.name} has no method options, got: {', '.join(sorted(options))}")
            return None
        opts = from_dict(cls.Options, options)
        if hasattr(opts, "validate"):
            opts.validate()
        return opts

    @classmethod
    def resolve_guidance_scale(cls, prior, config: GuidanceConfig) -> float | None:
        """config → the prior's `guidance_scales[name]` (lods_prior.json) → the method's default."""
        if cls.default_guidance_scale is None:
            return None
        if config.guidance_scale is not None:
            return float(config.guidance_scale)
        return float(prior.extra.get("guidance_scales", {}).get(cls.name, cls.default_guidance_scale))

    # ---------------------------------------------------------------- interface
    def forward(self, images01: torch.Tensor, cameras=None, step: int = 0, *, t=None, noise=None, generator=None) -> dict:
        """Losses for rendered images in [0, 1] (B, 3, H, W); see `forward_latents`."""
        return self.forward_latents(self.prior.encode_images(images01), cameras, step, t=t, noise=noise, generator=generator)

    def forward_latents(self, z: torch.Tensor, cameras=None, step: int = 0, *, t=None, noise=None, generator=None) -> dict:
        """Losses for model-space `z` (latents or [-1, 1] pixels). Random draws in order: t, ε, then t', ε'
        of the learnable part's loss, all from `generator` (t and ε may be given instead)."""
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        """Optimizer groups ({params, lr, name, weight_decay}) of the learnable parts; [] if none.
        Every learnable tensor is also registered on this module, so `state_dict()` checkpoints it."""
        return []

    # ---------------------------------------------------------------- shared steps
    def draw(self, z: torch.Tensor, step: int, t=None, noise=None, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Timesteps t ~ U{min..max(step)} and noise ε for the distillation gradient."""
        if t is None:
            lo, hi = self.t_range(step)
            t = sample_timesteps(z.shape[0], lo, hi, generator, z.device)
        t = torch.as_tensor(t, device=z.device).long().reshape(-1).expand(z.shape[0])
        if noise is None:
            noise = randn_like(z, generator)
        return t, noise.to(z.device, torch.float32)

    def eps_pair(self, z_t: torch.Tensor, t: torch.Tensor, cameras=None, extra=()) -> tuple[torch.Tensor, ...]:
        """(ε(z_t; y), ε(z_t; ∅), *ε of each `extra` (z, t, embeddings)) in ONE batched UNet call, y the view's prompt.
        With `perp_neg` (and cameras), ε(z_t; y) is Perp-Neg's effective prediction (prompts.perp_neg_combine), so
        every method that forms ε∅ + s (ε_y − ε∅) or ε_y − ε∅ from this pair uses Perp-Neg."""
        b = z_t.shape[0]
        negs = []
        if self.config.perp_neg and cameras is not None:
            cond, negs, weights = perp_neg_embeddings(self.prompts, cameras, b, self.config.perp_neg_scale)
        else:
            cond = self.prompts.conditional(cameras, b)
        parts = [(z_t, t, cond), (z_t, t, self.prompts.unconditional(b))] + [(z_t, t, n) for n in negs] + list(extra)
        out = self.prior.predict_noise(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]),
                                       torch.cat([p[2] for p in parts]))
        chunks = list(out.split([p[0].shape[0] for p in parts]))
        eps_y, eps_null = chunks[0], chunks[1]
        if negs:
            eps_y = perp_neg_combine(eps_y, eps_null, chunks[2:2 + len(negs)], weights)
        return (eps_y, eps_null, *chunks[2 + len(negs):])

    def cfg(self, eps_y: torch.Tensor, eps_null: torch.Tensor, scale: float | None = None) -> torch.Tensor:
        """ε∅ + s (ε_y − ε∅), s the method's CFG scale unless given."""
        return eps_null + (self.guidance_scale if scale is None else scale) * (eps_y - eps_null)

    def t_range(self, step: int) -> tuple[int, int]:
        """The inclusive timestep range [min_t, max_t] at `step`."""
        c = self.config
        return timestep_range(step, self.prior.num_train_timesteps, c.min_step_percent, c.max_step_percent,
                              c.max_step_percent_annealed, c.anneal_start_step, c.anneal_end_step)

    def draw_prior(self, z: torch.Tensor, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh t' ~ U{0..N-1} and ε' for the learnable part's denoising loss."""
        t = sample_timesteps(z.shape[0], 0, self.prior.num_train_timesteps - 1, generator, z.device)
        return t, randn_like(z, generator)

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        """w(t) = 1 - ᾱ_t, shaped (B, 1, 1, 1)."""
        return (1.0 - self.prior.alphas_cumprod[t]).view(-1, 1, 1, 1)

    def finish(self, z: torch.Tensor, grad: torch.Tensor, t: torch.Tensor, **losses) -> dict:
        """Wrap `grad` into loss_distill and add the diagnostics every method reports."""
        loss, grad = distillation_loss(z, grad, self.config.grad_clip)
        out = {"loss_distill": loss, **losses}
        out["t"] = t.detach()
        out["grad_norm"] = grad.flatten(1).norm(dim=1).mean()  # a tensor: reading it is the caller's host sync
        return out

    def learned_grad_scale(self) -> float:
        """The backward scale of the learnable part's loss: fp16 gradients of a tiny loss underflow without it."""
        if self.config.learned_grad_scale is not None:
            return float(self.config.learned_grad_scale)
        return 1024.0 if self.prior.dtype in (torch.float16, torch.bfloat16) else 1.0

    def scale_learned_backward(self, loss: torch.Tensor) -> torch.Tensor:
        """`loss` unchanged in value; its backward through the (fp16) UNet carries k × the gradient, and each learnable
        fp32 leaf (this guidance's `param_groups`) divides its gradient by k again: the optimiser sees the exact one."""
        k = self.learned_grad_scale()
        if k == 1.0:
            return loss
        if not getattr(self, "_unscale_hooks", None):
            params = [p for g in self.param_groups() for p in g["params"]]
            self._unscale_hooks = [p.register_hook(lambda g, k=k: g / k) for p in params]
        return ScaleGrad.apply(loss, k)


class ScaleGrad(torch.autograd.Function):
    """Identity forward; the backward multiplies the incoming gradient by `k`."""

    @staticmethod
    def forward(ctx, x, k):
        ctx.k = k
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.k, None


def randn_like(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    device = generator.device if generator is not None else z.device
    return torch.randn(z.shape, generator=generator, device=device).to(z.device)


def is_infinite(scale: float | None) -> bool:
    return scale is not None and math.isinf(scale)
