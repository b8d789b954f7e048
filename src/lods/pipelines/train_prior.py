"""Train the embedded prior on renders of the world: resumable, deterministic in its seed.

Each step draws its batch, caption dropout, timesteps and noise from a generator seeded by (seed, step), so a
run resumed from a checkpoint continues exactly as an uninterrupted one would.

Captions: 10% are emptied (the unconditional branch); of the rest, attributes are dropped at the world's rates
(world/captions.py: "a cube", "a red object"), and 75% get a view suffix. The training renders carry the world's
variance (world/variation.py). `init_from` warm-starts from an earlier exported prior (priors/embedded.warm_start).
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..utils.io import atomic_write_json, load_checkpoint, optimizer_from_tensors, optimizer_to_tensors, save_checkpoint
from ..world.captions import drop_attributes
from ..world.dataset import WorldRenders, render_world
from ..world.scene import VOCABULARY, parse_prompt
from .. import __version__
from ..priors import embedded


@dataclass
class TrainPriorConfig:
    out: str = "runs/prior"
    steps: int = 20000
    batch_size: int = 64
    lr: float = 6e-4
    warmup_steps: int = 200
    ema_decay: float = 0.999
    caption_dropout: float = 0.1
    view_suffix_prob: float = 0.75
    min_snr_gamma: float = 5.0
    data_scenes: int = 12000
    views_per_scene: int = 4
    size: int = 32
    seed: int = 0
    checkpoint_every: int = 200
    workers: int = 2
    time_limit_min: float = 0.0  # stop (after a checkpoint) once this many minutes have passed; 0 = no limit
    attribute_dropout: bool = True  # drop colours / shapes from captions at the world's rates
    vary: bool = True  # render the training set with the world's shade and light variance
    pooled_text: bool = True  # the pooled text embedding added to the timestep embedding (priors/embedded.py)
    cross_attention_from: int = 8  # the finest level with cross-attention: 8 (priors v1, v2), 16 or 32
    init_from: str = ""  # an exported prior folder to warm-start from ("" = from scratch)
    data_from: str = ""  # a folder holding this training set's renders already (e.g. an earlier run's folder)
    vae_from: str = ""  # a trained autoencoder folder (`lods prior train-vae`'s OUT/vae): a latent prior on its latents

    def validate(self) -> None:
        if self.steps <= 0 or self.batch_size <= 0 or self.data_scenes <= 0 or self.views_per_scene <= 0:
            raise ValueError("steps, batch size, data scenes and views per scene must be positive")
        if not 0 <= self.caption_dropout < 1 or not 0 <= self.view_suffix_prob <= 1:
            raise ValueError("caption dropout must lie in [0, 1) and view suffix probability in [0, 1]")
        if self.lr <= 0 or not 0 < self.ema_decay < 1:
            raise ValueError("lr must be positive and ema decay in (0, 1)")
        if self.cross_attention_from not in embedded.CROSS_ATTENTION_FROM:
            raise ValueError(f"cross-attention from {self.cross_attention_from}²: choose one of {embedded.CROSS_ATTENTION_FROM}")


def world_renders(out: Path, cfg, data_from: Path | None = None) -> WorldRenders:
    """The rendered training set of `cfg`'s data settings: read from `data_from` or `out` when there, else rendered
    into `out` (a file named by the settings, so runs of other settings never share one)."""
    name = f"world_{cfg.seed}_{cfg.data_scenes}x{cfg.views_per_scene}_{cfg.size}{'_vary' if cfg.vary else ''}.npz"
    if data_from is not None:
        if not (data_from / name).exists():
            raise UserError(f"--data-from {data_from}: no {name} there (a training set of other settings?)")
        return WorldRenders.load(data_from / name)
    if not (out / name).exists():
        render_world(cfg.data_scenes, cfg.views_per_scene, seed=cfg.seed, size=cfg.size, workers=cfg.workers,
                     vary=cfg.vary).save(out / name)
    return WorldRenders.load(out / name)


def _load_vae(folder: Path):
    from diffusers import AutoencoderKL

    if not (folder / "config.json").is_file():
        raise UserError(f"--vae-from {folder}: not an autoencoder folder (no config.json; `lods prior train-vae` writes OUT/vae)")
    vae = AutoencoderKL.from_pretrained(folder, use_safetensors=True, torch_dtype=torch.float32)
    return vae.eval().requires_grad_(False)


def _latents(out: Path, cfg, data: WorldRenders, vae) -> torch.Tensor:
    """The training set's scaled latent means, computed once and cached in `out` beside the renders (named by the
    autoencoder's weights, so another autoencoder never reads them)."""
    import hashlib

    from safetensors.torch import load_file, save_file

    from ..priors.embedded_vae import encode_means
    from ..utils.io import atomic_save

    digest = hashlib.sha256((Path(cfg.vae_from) / "diffusion_pytorch_model.safetensors").read_bytes()).hexdigest()[:12]
    path = out / f"latents_{cfg.seed}_{cfg.data_scenes}x{cfg.views_per_scene}_{cfg.size}{'_vary' if cfg.vary else ''}_{digest}.safetensors"
    if not path.exists():
        z = encode_means(vae, torch.from_numpy(data.images)) * vae.config.scaling_factor
        atomic_save(path, lambda tmp: save_file({"latents": z.contiguous()}, str(tmp)))
    return load_file(str(path))["latents"]


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def train_prior(cfg: TrainPriorConfig, progress=None) -> dict:
    """Train (or resume) and export the EMA weights to `out/prior`. Returns the run's metrics."""
    cfg.validate()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", asdict(cfg))
    vae = _load_vae(Path(cfg.vae_from)) if cfg.vae_from else None  # before rendering: a bad folder fails at once
    data = world_renders(out, cfg, Path(cfg.data_from) if cfg.data_from else None)
    samples = _latents(out, cfg, data, vae) if vae is not None else torch.from_numpy(data.images)  # what the UNet learns: (N, C, H, W)

    tokenizer = embedded.build_tokenizer(VOCABULARY)
    text_encoder = embedded.build_text_encoder(tokenizer, seed=cfg.seed)
    unet = embedded.build_unet(seed=cfg.seed, sample_size=samples.shape[-1], pooled_text=cfg.pooled_text,
                               cross_attention_from=cfg.cross_attention_from,
                               latent_channels=samples.shape[1] if vae is not None else 0)
    scheduler = embedded.build_scheduler(latent=vae is not None)
    warm = embedded.warm_start(unet, text_encoder, tokenizer, Path(cfg.init_from)) if cfg.init_from else None
    params = list(unet.parameters()) + list(text_encoder.parameters())
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    alphas = scheduler.alphas_cumprod.float()
    snr = alphas / (1 - alphas)

    ckpt_path = out / "checkpoints" / "last.safetensors"
    step = 0
    history: list[dict] = []
    if ckpt_path.exists():
        tensors, meta = load_checkpoint(ckpt_path)
        made = meta.get("config") or {}
        for key in ("pooled_text", "cross_attention_from", "vae_from"):  # the architecture; runs before a field: its default
            recorded = made.get(key, getattr(TrainPriorConfig, key))
            if recorded != getattr(cfg, key):
                raise UserError(f"{out} holds a prior trained with {key} {recorded}, not "
                                 f"{getattr(cfg, key)}: give the same setting, or another --out")
        for i, p in enumerate(params):
            p.data.copy_(tensors[f"param/{i}"])
            ema[i].copy_(tensors[f"ema/{i}"])
        optimizer_from_tensors(opt, tensors, meta["optimizer"])
        step = meta["step"]
        history = meta.get("history", [])
    scenes = [parse_prompt(c)[0] for c in data.captions] if cfg.attribute_dropout else None

    def checkpoint() -> None:
        tensors = {f"param/{i}": p for i, p in enumerate(params)}
        tensors.update({f"ema/{i}": e for i, e in enumerate(ema)})
        opt_t, opt_meta = optimizer_to_tensors(opt)
        tensors.update(opt_t)
        save_checkpoint(ckpt_path, tensors, {"step": step, "optimizer": opt_meta, "history": history, "config": asdict(cfg)})
        export(out / "prior")

    def export(folder: Path) -> None:
        backup = [p.detach().clone() for p in params]
        for p, e in zip(params, ema):
            p.data.copy_(e)
        embedded.save_prior_folder(
            folder, unet, text_encoder, tokenizer, scheduler,
            extra={"lods_version": __version__, "kind": "world", "vocabulary": list(VOCABULARY), "step": step,
                   "size": cfg.size, "negative_prompt": "", "train_config": asdict(cfg), "warm_start": warm},
            vae=vae,
        )
        for p, b in zip(params, backup):
            p.data.copy_(b)

    start = time.time()
    window: list[float] = []
    t_last = time.time()
    unet.train()
    text_encoder.train()
    while step < cfg.steps:
        g = _step_generator(cfg.seed, step)
        idx = torch.randint(0, len(data), (cfg.batch_size,), generator=g)
        drop = torch.rand(cfg.batch_size, generator=g) < cfg.caption_dropout
        suffix = torch.rand(cfg.batch_size, generator=g) < cfg.view_suffix_prob
        caption_rng = random.Random(int(torch.randint(0, 2**62, (1,), generator=g))) if scenes is not None else None
        captions = []
        for j, i in enumerate(idx.tolist()):
            text = drop_attributes(scenes[i], caption_rng).caption() if scenes is not None else data.captions[i]
            if drop[j]:
                captions.append("")
            elif suffix[j]:
                captions.append(f"{text}, {data.views[i]} view")
            else:
                captions.append(text)
        x0 = samples[idx] if vae is not None else samples[idx].float() / 127.5 - 1.0
        t = torch.randint(0, scheduler.config.num_train_timesteps, (cfg.batch_size,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        xt = scheduler.add_noise(x0, noise, t)
        ids = tokenizer(captions, padding="max_length", max_length=embedded.CONTEXT_LENGTH, truncation=True, return_tensors="pt").input_ids
        cond = text_encoder(ids)[0]
        pred = unet(xt, t, encoder_hidden_states=cond).sample
        weight = snr[t].clamp(max=cfg.min_snr_gamma) / snr[t] if cfg.min_snr_gamma > 0 else torch.ones(cfg.batch_size)
        per_sample = F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))
        loss = (weight * per_sample).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss.item()} at step {step}")
        lr = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps))
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.lerp_(p.detach(), 1 - decay)
        step += 1
        window.append(per_sample.mean().item())
        if progress is not None:
            progress(step, cfg.steps, {"loss": per_sample.mean().item()})
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            now = time.time()
            history.append({"step": step, "loss": float(np.mean(window)), "images_per_s": len(window) * cfg.batch_size / (now - t_last)})
            window = []
            t_last = now
            checkpoint()
            if cfg.time_limit_min and (now - start) / 60 >= cfg.time_limit_min:
                break
    metrics = {"step": step, "history": history, "final_loss": history[-1]["loss"] if history else math.nan,
               "seconds_this_session": time.time() - start}
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


if __name__ == "__main__":  # used to launch the long background run before the CLI existed
    import sys

    kwargs = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    cfg = TrainPriorConfig(**kwargs)

    def report(step, total, logs):
        if step % 20 == 0:
            print(f"step {step}/{total} loss {logs['loss']:.4f} {time.strftime('%H:%M:%S')}", flush=True)

    train_prior(cfg, progress=report)
