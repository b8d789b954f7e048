"""Train the judge on renders of the world (seeds apart from the prior's data) and report held-out accuracy.

Augmentation keeps every label valid: brightness jitter, shifts of a pixel or two (white fill), mild blur
and noise so that slightly imperfect generated images still read. No horizontal flips: they swap left and right.
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

from .. import __version__
from ..render.cameras import EVAL_AZIMUTH_OFFSET_DEG, evaluation_cameras, orbit_cameras, view_label
from ..world.dataset import DISTANCE_RANGE, ELEVATION_RANGE, FOV_DEG, WorldRenders, render_world, scene_labels
from ..world.judge import HEAD_CLASSES, MULTI_HEADS, Judge, JudgeArch, JudgeNet, scene_targets
from ..world.render import render_scene
from ..world.scene import Scene, WorldObject, random_scene
from ..world.variation import CANONICAL, random_variation


MULTI_BLOCK = 4000  # scenes per cached block of extra two-object renders


@dataclass
class TrainJudgeConfig:
    out: str = "runs/judge"  # the judge's folder (judge.safetensors + config.json)
    cache_dir: str = "runs/judge_data"  # rendered datasets, reused across runs
    train_scenes: int = 6000
    heldout_scenes: int = 1000
    views_per_scene: int = 4
    extra_multi_scenes: int = 16000  # two-object scenes added to the training renders (the hardest category)
    extra_multi_views: int = 2
    ring_scenes: int = 300  # held-out scenes seen from the 8 evaluation cameras (the benchmark's views)
    train_seed: int = 1000
    heldout_seed: int = 2000
    ring_seed: int = 3000
    seed: int = 0  # initialisation and batch order
    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    multi_weight: float = 1.0  # two-object images are drawn this much more often than the others
    widths: tuple[int, ...] = (24, 48, 96)
    hidden: int = 128
    shift: int = 2  # max translation in pixels
    brightness: float = 0.06  # multiplicative jitter of the object's darkness (white stays white)
    noise: float = 0.02  # max std of added gaussian noise
    blur_prob: float = 0.3
    blur_sigma: float = 0.8  # max std (pixels) of the gaussian blur
    size: int = 32
    workers: int = 1
    threads: int = 1
    vary: bool = True  # train and hold out on renders with the world's shade and light variance
    init_from: str = ""  # a judge folder to fine-tune from (same architecture); "" = from scratch

    def validate(self) -> None:
        if min(self.train_scenes, self.heldout_scenes, self.views_per_scene, self.epochs, self.batch_size) <= 0:
            raise ValueError("scenes, views per scene, epochs and batch size must be positive")
        if self.train_seed == self.heldout_seed:
            raise ValueError("the held-out set needs its own seed")
        if self.lr <= 0 or self.multi_weight <= 0 or self.shift < 0:
            raise ValueError("lr and multi weight must be positive and shift non-negative")
        if len(self.widths) != 3:
            raise ValueError("widths needs three stage widths")


def _cached(cfg: TrainJudgeConfig, name: str, make) -> WorldRenders:
    path = Path(cfg.cache_dir) / f"{name}_{cfg.size}.npz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        make().save(path)
    return WorldRenders.load(path)


def render_scenes(n_scenes: int, seed: int, size: int, category_weights=(0.5, 0.25, 0.25), views_per_scene: int = 4,
                  ring: bool = False, start: int = 0, vary: bool = False) -> WorldRenders:
    """Random scenes `start` .. `start + n_scenes` drawn with `category_weights`, each from `views_per_scene` random
    training-distribution cameras, or (ring=True) from the 8 evaluation cameras. Deterministic in `seed`.
    `vary` draws each scene's shades and light (world/variation.py) after its cameras."""
    images, captions, views, labels = [], [], [], []
    for i in range(start, start + n_scenes):
        rng = random.Random(f"{seed}-{i}")
        scene = random_scene(rng, weights=category_weights)
        if ring:
            cams = evaluation_cameras(8)
        else:
            el = torch.tensor([rng.uniform(*ELEVATION_RANGE) for _ in range(views_per_scene)])
            az = torch.tensor([rng.uniform(-180.0, 180.0) for _ in range(views_per_scene)])
            dist = torch.tensor([rng.uniform(*DISTANCE_RANGE) for _ in range(views_per_scene)])
            cams = orbit_cameras(el, az, dist, FOV_DEG)
        variation = random_variation(rng, len(scene.objects)) if vary else CANONICAL
        rgb = render_scene(scene, cams, size=size, variation=variation)["rgb"]
        images.append((rgb * 255).round().clamp(0, 255).to(torch.uint8).numpy())
        for e, a in zip(cams.elevation_deg.tolist(), cams.azimuth_deg.tolist()):
            captions.append(scene.caption())
            views.append(view_label(e, a))
            labels.append(scene_labels(scene))
    return WorldRenders(np.concatenate(images), captions, views, labels)


def _concat(a: WorldRenders, b: WorldRenders) -> WorldRenders:
    return WorldRenders(np.concatenate([a.images, b.images]), a.captions + b.captions, a.views + b.views, a.labels + b.labels)


def label_targets(labels: list[dict]) -> dict[str, torch.Tensor]:
    """Class index per head and image (-1 where a head does not apply), from `WorldRenders.labels`."""
    rows = []
    for lab in labels:
        objs = tuple(WorldObject(o["shape"], o["color"]) for o in lab["objects"])
        rows.append(scene_targets(Scene(objs, context=lab["context"], relation=lab["relation"])))
    return {h: torch.tensor([r[h] for r in rows]) for h in HEAD_CLASSES}


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image with its own std `sigma` (B,), 5-tap separable kernel, edges replicated."""
    taps = torch.arange(-2, 3, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (taps[None] / sigma[:, None].clamp(min=1e-3)) ** 2)
    k = k / k.sum(1, keepdim=True)  # (B, 5)
    B, C, H, W = x.shape
    y = F.pad(x, (2, 2, 2, 2), mode="replicate")
    y = sum(k[:, i, None, None, None] * y[..., :, i : i + W] for i in range(5))
    return sum(k[:, i, None, None, None] * y[..., i : i + H, :] for i in range(5))


def augment(x: torch.Tensor, cfg: TrainJudgeConfig, g: torch.Generator) -> torch.Tensor:
    """Label-preserving jitter of images in [0, 1] (B, 3, H, W) on white."""
    B, _, H, W = x.shape
    # brightness: scale the darkness (1 - x), so the white background stays white
    s = 1 + cfg.brightness * (2 * torch.rand(B, 1, 1, 1, generator=g) - 1)
    x = (1 - (1 - x) * s).clamp(0, 1)
    if cfg.shift > 0:
        p = cfg.shift
        padded = F.pad(x, (p, p, p, p), value=1.0)
        dx = torch.randint(0, 2 * p + 1, (B,), generator=g).tolist()
        dy = torch.randint(0, 2 * p + 1, (B,), generator=g).tolist()
        x = torch.stack([padded[i, :, dy[i] : dy[i] + H, dx[i] : dx[i] + W] for i in range(B)])
    if cfg.blur_prob > 0:
        blur = torch.rand(B, generator=g) < cfg.blur_prob
        if blur.any():
            sigma = 0.3 + (cfg.blur_sigma - 0.3) * torch.rand(int(blur.sum()), generator=g)
            x[blur] = _gaussian_blur(x[blur], sigma)
    if cfg.noise > 0:
        std = cfg.noise * torch.rand(B, 1, 1, 1, generator=g)
        x = (x + std * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return x


def _losses(logits: dict, targets: dict) -> torch.Tensor:
    return sum(F.cross_entropy(logits[h], targets[h], ignore_index=-1) for h in HEAD_CLASSES
               if (targets[h] >= 0).any())


@torch.no_grad()
def evaluate_judge(judge: Judge, images_uint8: torch.Tensor, targets: dict[str, torch.Tensor], batch_size: int = 512) -> dict:
    """Held-out accuracy per head (multi heads on two-object images only), exact match of the whole caption
    (every head the caption names), overall and per category."""
    preds = {h: [] for h in HEAD_CLASSES}
    for i in range(0, len(images_uint8), batch_size):
        logits = judge.logits(images_uint8[i : i + batch_size].float() / 255)
        for h in HEAD_CLASSES:
            preds[h].append(logits[h].argmax(-1).cpu())
    preds = {h: torch.cat(v) for h, v in preds.items()}
    cat = targets["category"]
    multi = cat == HEAD_CLASSES["category"].index("multi")
    surr = cat == HEAD_CLASSES["category"].index("surroundings")
    acc = {}
    for h in HEAD_CLASSES:
        valid = targets[h] >= 0
        if not valid.any():
            continue  # e.g. no two-object image in a tiny held-out set
        acc[h] = (preds[h] == targets[h])[valid].float().mean().item()
    exact = (preds["category"] == cat) & (preds["shape1"] == targets["shape1"]) & (preds["color1"] == targets["color1"])
    exact &= ~surr | (preds["context"] == targets["context"])
    for h in MULTI_HEADS:
        exact &= ~multi | (preds[h] == targets[h])
    acc["exact"] = exact.float().mean().item()
    for i, name in enumerate(HEAD_CLASSES["category"]):
        sel = cat == i
        if sel.any():
            acc[f"exact_{name}"] = exact[sel].float().mean().item()
    return acc


def train_judge(cfg: TrainJudgeConfig, progress=None) -> dict:
    """Render (or reuse) the data, train, evaluate on the held-out renders, save the judge to `cfg.out`."""
    cfg.validate()
    torch.set_num_threads(cfg.threads)
    start = time.time()
    v = cfg.views_per_scene
    vary, tag = cfg.vary, "_vary" if cfg.vary else ""
    train = _cached(cfg, f"world_{cfg.train_seed}_{cfg.train_scenes}x{v}{tag}",
                    lambda: render_world(cfg.train_scenes, v, seed=cfg.train_seed, size=cfg.size, workers=cfg.workers, vary=vary))
    if cfg.extra_multi_scenes:
        # cached in blocks, so that a larger budget reuses the blocks already rendered
        m, seed = cfg.extra_multi_views, cfg.train_seed + 1
        for lo in range(0, cfg.extra_multi_scenes, MULTI_BLOCK):
            n = min(MULTI_BLOCK, cfg.extra_multi_scenes - lo)
            block = _cached(cfg, f"multi_{seed}_{lo}+{n}x{m}{tag}",
                            lambda: render_scenes(n, seed, cfg.size, (0, 0, 1), m, start=lo, vary=vary))
            train = _concat(train, block)
    held = _cached(cfg, f"world_{cfg.heldout_seed}_{cfg.heldout_scenes}x{v}{tag}",
                   lambda: render_world(cfg.heldout_scenes, v, seed=cfg.heldout_seed, size=cfg.size, workers=cfg.workers, vary=vary))
    ring = _cached(cfg, f"ring_{cfg.ring_seed}_{cfg.ring_scenes}x8_az{EVAL_AZIMUTH_OFFSET_DEG:g}{tag}",
                   lambda: render_scenes(cfg.ring_scenes, cfg.ring_seed, cfg.size, ring=True, vary=vary)) if cfg.ring_scenes else None
    images = torch.from_numpy(train.images)
    targets = label_targets(train.labels)
    held_images = torch.from_numpy(held.images)
    held_targets = label_targets(held.labels)
    render_s = time.time() - start

    torch.manual_seed(cfg.seed)
    if cfg.init_from:
        net = Judge.load(cfg.init_from).net
        if tuple(net.arch.widths) != tuple(cfg.widths) or net.arch.hidden != cfg.hidden:
            raise ValueError(f"init_from {cfg.init_from}: its architecture differs from widths={cfg.widths}, hidden={cfg.hidden}")
    else:
        net = JudgeNet(JudgeArch(cfg.widths, cfg.hidden))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(cfg.seed)
    weights = torch.where(targets["category"] == HEAD_CLASSES["category"].index("multi"), cfg.multi_weight, 1.0)
    steps_per_epoch = max(1, len(images) // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    warmup = min(200, total // 10)
    history = []
    step = 0
    for epoch in range(cfg.epochs):
        net.train()
        order = torch.multinomial(weights, steps_per_epoch * cfg.batch_size, replacement=True, generator=g)
        running = 0.0
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x = augment(images[idx].float() / 255, cfg, g) * 2 - 1
            loss = _losses(net(x), {h: t[idx] for h, t in targets.items()})
            # linear warm-up, then cosine decay to zero
            lr = cfg.lr * min((step + 1) / max(1, warmup), 0.5 * (1 + math.cos(math.pi * step / total)))
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            running += loss.item()
            if progress is not None:
                progress(step, total, {"loss": loss.item(), "epoch": epoch})
        judge = Judge(net)
        acc = evaluate_judge(judge, held_images, held_targets)
        history.append({"epoch": epoch + 1, "loss": running / steps_per_epoch, "heldout": acc})
        if progress is not None:
            progress(step, total, {"loss": running / steps_per_epoch, "epoch": epoch, "heldout": acc})
    judge = Judge(net.eval())
    final = history[-1]["heldout"]
    metrics = {
        "heldout_accuracy": final,
        "ring_accuracy": evaluate_judge(judge, torch.from_numpy(ring.images), label_targets(ring.labels)) if ring else None,
        "min_head_accuracy": min(v for k, v in final.items() if not k.startswith("exact_")),
        "train_images": len(images),
        "heldout_images": len(held_images),
        "ring_images": len(ring) if ring else 0,
        "render_seconds": render_s,
        "train_seconds": time.time() - start - render_s,
        "history": history,
    }
    judge.save(cfg.out, extra={"lods_version": __version__, "train_config": asdict(cfg), **metrics})
    return metrics


def main(argv: list[str] | None = None) -> dict:
    """`python -m lods.pipelines.train_judge '{"out": "...", "epochs": 14}'` (a JSON object of config fields)."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    cfg = TrainJudgeConfig(**(json.loads(argv[0]) if argv else {}))

    def report(step, total, logs):
        if "heldout" in logs:
            acc = " ".join(f"{k} {v:.4f}" for k, v in logs["heldout"].items())
            print(f"epoch {logs['epoch'] + 1} loss {logs['loss']:.4f} | held-out {acc} {time.strftime('%H:%M:%S')}", flush=True)

    metrics = train_judge(cfg, progress=report)
    print(json.dumps({k: metrics[k] for k in ("heldout_accuracy", "ring_accuracy", "train_images", "train_seconds")} | {"out": cfg.out}, indent=2))
    return metrics


if __name__ == "__main__":
    main()
