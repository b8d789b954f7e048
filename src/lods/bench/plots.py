"""The quality benchmark's plots/: a bar chart per metric (mean ± std per group and category), metric-against-CFG
curves in a sweep, and a grid of views per prompt for a few prompts (the world's truth on top)."""

from __future__ import annotations

import math
from pathlib import Path

from .config import BenchConfig
from .stats import INF_CFG, cfg_float, group_key, group_rows, key_label, mean_std, metric_value, plotted_metrics
from .suites import SuitePrompt, slugify


def write_plots(bc: BenchConfig, rows: list[dict], folder: Path, suite: list[SuitePrompt]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    ok = [r for r in rows if not str(r["status"]).startswith("failed")]
    with_cfg = bc.with_cfg
    groups = group_rows(ok, with_cfg)
    written = []
    cats = list(bc.categories) + ["overall"]
    for m, label, *_ in plotted_metrics(ok):
        fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(cats) * max(1, len(groups)) / 2.5, 3.6))
        width = 0.8 / max(1, len(groups))
        for gi, (key, grp) in enumerate(groups.items()):
            means, stds = [], []
            for c in cats:
                mu, sd, _ = mean_std(metric_value(r, m) for r in grp if c == "overall" or r["category"] == c)
                means.append(0.0 if math.isnan(mu) else mu)
                stds.append(0.0 if math.isnan(sd) else sd)
            xs = [i + (gi - (len(groups) - 1) / 2) * width for i in range(len(cats))]
            ax.bar(xs, means, width, yerr=stds, capsize=2, label=key_label(key))
        ax.set_xticks(range(len(cats)), cats)
        ax.set_ylabel(label)
        ax.set_title(f"{label}: mean ± std")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = folder / f"{m}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    if with_cfg:
        written += _cfg_plots(ok, folder, plt)
    written += view_grids(bc, ok, folder, suite, plt)
    return written


def _cfg_plots(rows: list[dict], folder: Path, plt) -> list[Path]:
    written = []
    by_method: dict[tuple, dict[float, list[dict]]] = {}
    for r in rows:
        s = cfg_float(r["cfg"])
        if s is None:
            continue
        by_method.setdefault((r["method"], r["backbone"]), {}).setdefault(s, []).append(r)
    if not by_method:
        return []
    for m, label, *_ in plotted_metrics(rows):
        fig, ax = plt.subplots(figsize=(4.8, 3.4))
        for key, per in by_method.items():
            xs = sorted(per)
            stats = [mean_std(metric_value(r, m) for r in per[x]) for x in xs]
            ax.errorbar(xs, [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", capsize=3, label=" ".join(key))
        ax.set_xscale("log")
        ticks = sorted({x for per in by_method.values() for x in per})
        ax.set_xticks(ticks, ["∞" if t >= INF_CFG else f"{t:g}" for t in ticks])
        ax.set_xlabel("CFG scale s")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = folder / f"cfg_{m}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def view_grids(bc: BenchConfig, rows: list[dict], folder: Path, suite: list[SuitePrompt], plt) -> list[Path]:
    """For the first `view_grid_prompts` prompts of each category: one row per method (seed 0), truth on top."""
    from PIL import Image

    chosen = []
    for c in bc.categories:
        chosen += [s for s in suite if s.category == c][: bc.view_grid_prompts]
    written = []
    with_cfg = bc.with_cfg
    for sp in chosen:
        panels = []
        truth = _truth_views(sp.prompt, rows) if bc.suite == "world" else None
        if truth is not None:
            panels.append(("world truth", truth))
        seed0 = sorted((r for r in rows if r["prompt"] == sp.prompt), key=lambda r: int(r["seed"]))
        seen = set()
        for r in seed0:
            key = group_key(r, with_cfg)
            path = Path(r["run_dir"]) / "views.png"
            if key in seen or not path.exists():
                continue
            seen.add(key)
            panels.append((key_label(key) + f", seed {r['seed']}", Image.open(path).convert("RGB")))
        if not panels:
            continue
        w, h = panels[-1][1].size
        fig, axes = plt.subplots(len(panels), 1, figsize=(max(4.0, 6.0 * w / max(h, 1) / 2), 1.6 * len(panels) + 0.4),
                                 squeeze=False)
        for ax, (label, im) in zip(axes[:, 0], panels):
            ax.imshow(im)
            ax.set_axis_off()
            ax.set_title(label, fontsize=8, loc="left")
        fig.suptitle(sp.prompt, fontsize=9)
        fig.tight_layout()
        path = folder / f"views_{slugify(sp.prompt)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _truth_views(prompt: str, rows: list[dict]):
    """The world's true render of a prompt at the evaluation views, laid out as views.png and over the same
    background colour (read from the corner of a run's views.png), or None."""
    try:
        import numpy as np
        import torch
        import yaml
        from PIL import Image

        from ..export.images import image_grid, to_uint8
        from ..render.cameras import evaluation_cameras
        from ..world.render import render_scene
        from ..world.scene import parse_prompt

        run = next(Path(r["run_dir"]) for r in rows if r["prompt"] == prompt and (Path(r["run_dir"]) / "views.png").exists())
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        size, n = int(cfg["export"]["views_size"]), int(cfg["export"]["eval_views"])
        corner = np.asarray(Image.open(run / "views.png").convert("RGB"))[0, 0] / 255.0
        scene, _ = parse_prompt(prompt)
        truth = render_scene(scene, evaluation_cameras(n), size=size)
        rgb, alpha = truth["rgb"].float(), truth["alpha"].float()
        bg = torch.tensor(corner, dtype=torch.float32).view(1, 3, 1, 1)
        rgb = (rgb - (1.0 - alpha) + (1.0 - alpha) * bg).clamp(0, 1)  # rendered over white → over the runs' colour
        return Image.fromarray(to_uint8(image_grid(rgb, min(4, n))))
    except Exception:  # noqa: BLE001 - the truth row is a courtesy; the grid is drawn without it
        return None
