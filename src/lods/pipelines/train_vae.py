"""Train the embedded prior's autoencoder (priors/embedded_vae.py) on renders of the world: resumable, seeded.

Loss: the mean squared reconstruction error of the posterior sample plus `kl_weight` × KL (Stable Diffusion's VAE
adds a perceptual and an adversarial term; the world's flat-shaded renders need neither at 32²). The export, in
`out/vae`, is a diffusers AutoencoderKL folder whose `scaling_factor` is 1 / the latents' standard deviation over
the training set, as Stable Diffusion's 0.18215 is for its data.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..priors.embedded import swap_in
from ..priors.embedded_vae import build_vae, encode_means
from ..utils.io import atomic_write_json, load_checkpoint, optimizer_from_tensors, optimizer_to_tensors, save_checkpoint
from .train_prior import world_renders


@dataclass
class TrainVaeConfig:
    out: str = "runs/vae"
    steps: int = 3000
    batch_size: int = 64
    lr: float = 4e-4
    kl_weight: float = 1e-6
    data_scenes: int = 12000
    views_per_scene: int = 4
    size: int = 32
    seed: int = 0
    vary: bool = True
    checkpoint_every: int = 200
    workers: int = 2
    time_limit_min: float = 0.0  # stop (after a checkpoint) once this many minutes have passed; 0 = no limit
    data_from: str = ""  # a folder holding the rendered training set already (e.g. a prior's run folder)

    def validate(self) -> None:
        if self.steps <= 0 or self.batch_size <= 0 or self.lr <= 0 or self.kl_weight < 0:
            raise ValueError("steps, batch size and lr must be positive and the KL weight not negative")


def train_vae(cfg: TrainVaeConfig, progress=None) -> dict:
    """Train (or resume) the autoencoder and export it to `out/vae`. Returns the run's metrics."""
    cfg.validate()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", asdict(cfg))
    images = torch.from_numpy(world_renders(out, cfg, Path(cfg.data_from) if cfg.data_from else None).images)
    vae = build_vae(seed=cfg.seed, size=cfg.size)
    params = list(vae.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    ckpt_path = out / "checkpoints" / "vae_last.safetensors"  # not a prior's last.safetensors
    step, history = 0, []
    if ckpt_path.exists():
        tensors, meta = load_checkpoint(ckpt_path)
        for i, p in enumerate(params):
            p.data.copy_(tensors[f"param/{i}"])
        optimizer_from_tensors(opt, tensors, meta["optimizer"])
        step, history = meta["step"], meta.get("history", [])

    def checkpoint() -> None:
        tensors = {f"param/{i}": p for i, p in enumerate(params)}
        opt_t, opt_meta = optimizer_to_tensors(opt)
        tensors.update(opt_t)
        save_checkpoint(ckpt_path, tensors, {"step": step, "optimizer": opt_meta, "history": history, "config": asdict(cfg)})

    start, t_last, window = time.time(), time.time(), []
    vae.train()
    while step < cfg.steps:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        x = images[torch.randint(0, len(images), (cfg.batch_size,), generator=g)].float() / 127.5 - 1.0
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=g)
        recon = F.mse_loss(vae.decode(z).sample, x)
        kl = posterior.kl().mean() / x[0].numel()  # per pixel value, as the reconstruction term is
        loss = recon + cfg.kl_weight * kl
        if not torch.isfinite(loss):
            raise FloatingPointError(f"autoencoder loss is {loss.item()} at step {step}")
        lr = cfg.lr * min(1.0, (step + 1) / 100)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        window.append(recon.item())
        if progress is not None:
            progress(step, cfg.steps, {"loss": recon.item()})
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            now = time.time()
            history.append({"step": step, "recon_mse": float(np.mean(window)),
                            "psnr_db": float(10 * math.log10(4.0 / max(np.mean(window), 1e-12))),
                            "images_per_s": len(window) * cfg.batch_size / (now - t_last)})
            window, t_last = [], now
            checkpoint()
            if cfg.time_limit_min and (now - start) / 60 >= cfg.time_limit_min:
                break
    vae.eval()
    g = torch.Generator().manual_seed(cfg.seed)
    sample = images[torch.randperm(len(images), generator=g)[:2048]]
    std = float(encode_means(vae, sample).std())
    vae.register_to_config(scaling_factor=1.0 / std)
    export_vae(vae, out / "vae")
    metrics = {"step": step, "history": history, "latent_std": std, "scaling_factor": 1.0 / std,
               "final_psnr_db": history[-1]["psnr_db"] if history else math.nan,
               "seconds_this_session": time.time() - start}
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def export_vae(vae, folder: Path) -> None:
    """Write a diffusers AutoencoderKL folder atomically (beside, then a rename)."""
    import shutil

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    vae.save_pretrained(tmp, safe_serialization=True)
    swap_in(tmp, folder)
