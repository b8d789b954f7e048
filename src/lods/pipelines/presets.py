"""Named presets of a run (task × preset × backbone): `fast` is the CPU setting for the embedded prior, `paper` the
reference settings (docs/algorithm.md, "Presets"). Method settings (CFG scale, learning rates) come from the method's
own `presets` table, which wins over the backbone's common guidance settings; nothing here names a method.
"""

from __future__ import annotations

import dataclasses

from ..errors import UserError
from ..guidance import guidance_class
from ..guidance.base import GuidanceConfig
from ..render.cameras import CameraSamplerConfig
from .run_config import IMAGE_LOSSES, NO_GUIDANCE, PRESETS, GenerateConfig, ImageTo3DConfig

# Reconstruction weights. The MSEs are means over pixels while the distillation losses are sums, hence the large
# lambdas: at initialisation the reference-view gradient is a few times the guidance's (SDS at the fast preset).
RECON_LAMBDAS = dict(zip(IMAGE_LOSSES, (10000.0, 1000.0)))
# Methods whose gradient is a plain score difference (Guidance.difference_gradient: eps_y - eps_learned or
# eps_y - eps_null, i.e. LODS, normalised by s, and CSD) get lambda_distill = SDS's CFG scale of the preset, so that
# every guidance starts at SDS's gradient magnitude against the reconstruction (measured at initialisation: LODS's
# gradient is ~1/19 of SDS's at CFG 20).
SDS_CFG = {"fast": 20.0, "paper": 100.0}


def preset_config(preset: str, backbone: str, guidance: str) -> GenerateConfig:
    """The text-to-3D defaults of a preset for a backbone and a guidance."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    method = guidance_class(guidance)
    if preset == "fast":
        cfg = GenerateConfig(preset="fast", backbone=backbone, guidance=guidance, steps=400 if backbone == "gs" else 300, render_size=64)
        cfg.cameras = CameraSamplerConfig(views_per_step=4 if backbone == "gs" else 2)
        cfg.guidance_config = GuidanceConfig(**method.preset_defaults("fast", backbone))
        cfg.lambdas = {"distill": 1.0, "learned": 1.0, "sparsity": 0.0, "opacity": 0.0}
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
        cfg.lambdas = {"distill": 1.0, "learned": 1.0, "sparsity": 1.0, "opacity": 0.0}
    else:
        cfg = GenerateConfig(preset="paper", backbone="nerf", guidance=guidance, steps=25000, render_size=256, device="cuda",
                             prior="stabilityai/stable-diffusion-2-1-base", resolution_schedule=[[10000, 512]], background="random")
        cfg.cameras = CameraSamplerConfig(elevation_range=(-10.0, 45.0), distance_range=(1.5, 2.0), fov_range=(40.0, 70.0), views_per_step=1)
        cfg.guidance_config = GuidanceConfig(**{**dict(max_step_percent_annealed=0.5, anneal_start_step=10000, anneal_end_step=10001,
                                                       negative_prompt=""), **method.preset_defaults("paper", "nerf")})
        cfg.lambdas = {"distill": 1.0, "learned": 1.0, "sparsity": 0.0, "opacity": 0.0}
    cfg.checkpoint_every = 1000
    return cfg


def image_preset_config(preset: str, backbone: str, guidance: str) -> ImageTo3DConfig:
    """The text-to-3D preset plus the reference view. `paper`: CFG 100 for every guidance and LODS-embedding lr 1e-3
    (the paper's image-to-3D settings); `fast` (CPU, embedded prior): the text-to-3D CFG scales (SDS 20, LODS 100),
    LODS-embedding lr 1e-3, 2 novel views a step (the reference view is the third), 300 steps for gs."""
    base = preset_config(preset, backbone, "sds" if guidance == NO_GUIDANCE else guidance)
    cfg = ImageTo3DConfig(**{f.name: getattr(base, f.name) for f in dataclasses.fields(GenerateConfig)})
    cfg.guidance = guidance
    cfg.lambdas = {**base.lambdas, **RECON_LAMBDAS}
    if guidance != NO_GUIDANCE and guidance_class(guidance).difference_gradient:
        cfg.lambdas["distill"] = SDS_CFG[preset]
    cfg.guidance_config.embedding_lr = 1e-3
    if preset == "paper":
        cfg.guidance_config.guidance_scale = 100.0
    else:
        cfg.cameras.views_per_step = 2
        if backbone == "gs":
            cfg.steps = 300
    return cfg
