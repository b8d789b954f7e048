"""The gap benchmark's report: summary.md (tables per method@scale and prompt kind, diversity, paired differences
against SDS at its best scale, the command and the setting) and plots/ (metrics against s, a picture grid)."""

from __future__ import annotations

import math
from pathlib import Path

from .hardware import hardware_info, hardware_line, prior_line
from .results import is_finished
from .stats import format_mean_std as _fmt
from .stats import mean_std, metric_value as _value, paired_cells


METRICS = [  # (column, table label, short label, higher is better? None: no direction)
    ("psnr", "best-of-set PSNR ↑", "PSNR", True),
    ("ssim", "SSIM ↑", "SSIM", True),
    ("iou", "IoU ↑", "IoU", True),
    ("judge_confidence", "judge confidence ↑", "judge", True),
    ("judge_color_confidence", "colour conf. ↑", "colour", True),
    ("judge_shape_confidence", "shape conf. ↑", "shape", True),
    ("recognized_frac", "recognised views ↑", "recognised", True),
    ("saturation", "saturation", "sat.", None),
    ("saturation_error", "sat. error (signed)", "sat. error", None),
    ("abs_saturation_error", "abs. sat. error ↓", "abs. sat. error", False),
    ("realism", "realism ↓", "realism", False),
    ("learned_fit", "learned fit (loss / clean)", "fit", None),
    ("seconds", "s / run ↓", "time", False),
]
PLOTTED = ("saturation", "realism", "judge_confidence")
KINDS = ("ambiguous", "specified")


def _ok(rows):
    return [r for r in rows if is_finished(r["status"])]


def _groups(rows) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault((r["method"], r["backbone"]), []).append(r)
    return out


def _present(rows):
    return [m for m in METRICS if any(not math.isnan(_value(r, m[0])) for r in rows)]


def diversity_of(rows: list[dict]) -> tuple[float, float]:
    """Mean ± std over prompts of distinct nearest completions / min(seeds, |set|)."""
    from ..evaluate.set_metrics import diversity

    by_prompt: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("nearest_completion") and r.get("n_completions") not in ("", None):
            by_prompt.setdefault(r["prompt"], []).append(r)
    fracs = [diversity([r["nearest_completion"] for r in rs], int(rs[0]["n_completions"]))["diversity_frac"]
             for rs in by_prompt.values()]
    m, s, _ = mean_std(fracs)
    return m, s


def best_sds(rows: list[dict], gc) -> str | None:
    """The baseline: --baseline, else the plain SDS entry with the best mean judge confidence (then PSNR)."""
    if gc.baseline:
        return gc.baseline
    sds = [e.label for e in gc.grid if e.method == "sds"]
    scored = []
    for label in sds:
        sel = [r for r in rows if r["method"] == label]
        conf, psnr = mean_std(_value(r, "judge_confidence") for r in sel)[0], mean_std(_value(r, "psnr") for r in sel)[0]
        if not math.isnan(conf):
            scored.append((conf, -math.inf if math.isnan(psnr) else psnr, label))
    return max(scored)[2] if scored else None


def write_summary(gc, rows: list[dict], path: Path, started, wall: float, plots: list[Path]) -> Path:
    from ..utils.io import atomic_write_text

    ok, failed = _ok(rows), [r for r in rows if str(r["status"]).startswith("failed")]
    metrics = _present(ok)
    steps = gc.resolved_steps() or f"the {gc.preset} preset's"
    lines = [f"# Benchmark: the guidance gap ({gc.dims})", "",
             f"- Command: `{gc.command or '(called from Python)'}`",
             f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')}; wall time {wall / 60:.1f} min with {gc.workers} worker "
             f"process(es), {gc.threads} torch thread(s) each",
             f"- Hardware: {hardware_line(hardware_info(gc.device))}",
             f"- Prior: {prior_line(gc.prior)}",
             f"- Settings: grid {', '.join(e.label for e in gc.grid)}; steps {steps}; seeds 0..{gc.seeds - 1}"
             + ("" if gc.dims == "2d" else f"; backbones {', '.join(gc.backbones)}, preset {gc.preset}")
             + (f"; seed k starts from colour k mod {len(gc.start_colours)} of {', '.join(gc.start_colours)}"
                if gc.start_colours else f"; every run starts from {'noise' if gc.dims == '2d' else 'the gray ball'}"),
             f"- Runs: {len(rows)} ({len(ok)} finished, {len(failed)} failed"
             + (f", {len(rows) - len(ok) - len(failed)} not run yet: a partial report" if len(rows) > len(ok) + len(failed) else "")
             + f"); {sum(1 for r in rows if r['status'] == 'done before')} reused from an earlier invocation", ""]
    lines += ["Mean ± standard deviation over runs (prompts × seeds). The truth of a prompt is the set of its "
              "completions (docs/gap.md): PSNR, SSIM, IoU and the saturation error are against the nearest completion "
              "(best mean PSNR); judge confidence is the product of the judge's colour and shape confidence; realism "
              "is the prior's own denoising loss on the result (lower: more like its training images); diversity is "
              "the distinct nearest completions over seeds / min(seeds, set size); learned fit is the learned "
              "branch's loss at the end over the prior's loss on clean images (near 1: it follows the renders)."
              + (" In 2D every score is against the completions' front view: PSNR is only indicative." if gc.dims == "2d"
                 else ""), ""]
    for kind in (None,) + KINDS:
        sel_rows = [r for r in ok if kind is None or r["kind"] == kind]
        if not sel_rows:
            continue
        lines += [f"## {'All prompts' if kind is None else kind.capitalize() + ' prompts'}", "",
                  "| method@scale | backbone | runs | diversity | " + " | ".join(m[1] for m in metrics) + " |",
                  "|" + "---|" * (4 + len(metrics))]
        for (label, backbone), grp in _groups(sel_rows).items():
            cells = [label, backbone, str(len(grp)), _fmt(*diversity_of(grp))]
            cells += [_fmt(*mean_std(_value(r, m[0]) for r in grp)[:2]) for m in metrics]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += paired_section(ok, gc, metrics)
    if failed:
        lines += ["## Failed runs", ""] + [f"- {r['method']} {r['backbone']} seed {r['seed']} “{r['prompt']}”: "
                                           f"{r['status']}" for r in failed] + [""]
    lines += ["## Prompts", ""] + [f"- {k}: " + "; ".join(f"“{p}”" for p in dict.fromkeys(r["prompt"] for r in rows
                                                                                          if r["kind"] == k))
                                   for k in KINDS] + [""]
    if plots:
        lines += ["## Plots", ""] + [f"- [{p.name}](plots/{p.name})" for p in plots] + [""]
    lines += ["Files: `results.csv` (one row per run), `runs/<dims>/<method-s<scale>>[-<backbone>]-seed<k>/<prompt>/`.", ""]
    atomic_write_text(path, "\n".join(lines))
    return path


def paired_section(rows: list[dict], gc, metrics) -> list[str]:
    base = best_sds(rows, gc)
    if base is None:
        return []
    keyed = {(r["method"], r["backbone"], str(r["seed"]), r["prompt"]): r for r in rows}
    used = [m for m in metrics if m[3] is not None]
    lines = [f"## Paired differences against {base}", "",
             f"Entry minus {base} (SDS at its best scale: " + ("--baseline" if gc.baseline else "the best mean judge "
             "confidence") + ") on the same backbone, seed and prompt: mean ± standard error, and how often the entry "
             "is better (ties excluded).", "",
             "| method@scale | backbone | kind | pairs | " + " | ".join(f"Δ {m[1]}" for m in used) + " | "
             + " | ".join(f"better: {m[2]}" for m in used) + " |", "|" + "---|" * (4 + 2 * len(used))]
    for (label, backbone) in _groups(rows):
        if label == base:
            continue
        for kind in ("all",) + KINDS:
            pairs = [(r, keyed[(base, b, s, p)]) for (m, b, s, p), r in keyed.items()
                     if m == label and b == backbone and (kind == "all" or r["kind"] == kind) and (base, b, s, p) in keyed]
            if pairs:
                deltas, wins = paired_cells(pairs, used)
                lines.append("| " + " | ".join([label, backbone, kind, str(len(pairs))] + deltas + wins) + " |")
    return lines + [""]


# ---------------------------------------------------------------------------------------------- plots
def write_plots(gc, rows: list[dict], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    ok = _ok(rows)
    written = []
    for metric in PLOTTED:
        if all(math.isnan(_value(r, metric)) for r in ok):
            continue
        fig, axes = plt.subplots(1, len(KINDS), figsize=(9.5, 3.6), squeeze=False)
        for ax, kind in zip(axes[0], KINDS):
            _plot_vs_scale(ax, [r for r in ok if r["kind"] == kind], metric)
            ax.set_title(f"{kind} prompts", fontsize=9)
        fig.tight_layout()
        path = folder / f"{metric}_vs_scale.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    grid = picture_grid(gc, ok, folder, plt)
    return written + ([grid] if grid else [])


def _plot_vs_scale(ax, rows, metric) -> None:
    lines: dict[tuple, dict[float, list[float]]] = {}
    flat: dict[tuple, list[float]] = {}
    for r in rows:
        key = (r["guidance"], r["backbone"])
        v = _value(r, metric)
        s = _value(r, "scale")
        if math.isnan(s):
            flat.setdefault(key, []).append(v)
        else:
            lines.setdefault(key, {}).setdefault(s, []).append(v)
    for (method, backbone), per in sorted(lines.items()):
        xs = sorted(per)
        stats = [mean_std(per[x]) for x in xs]
        ax.errorbar(xs, [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", capsize=3,
                    label=method + ("" if backbone == "2d" else f" {backbone}"))
    for (method, backbone), vals in sorted(flat.items()):
        m = mean_std(vals)[0]
        if not math.isnan(m):
            ax.axhline(m, linestyle="--", linewidth=1, color="gray")
            ax.annotate(f"{method} (no s)", (0.02, m), xycoords=("axes fraction", "data"), fontsize=7)
    if lines:
        ax.set_xscale("log")
    ax.set_xlabel("CFG scale s")
    ax.set_ylabel(next((m[1] for m in METRICS if m[0] == metric), metric))
    if lines:
        ax.legend(fontsize=7)


def picture_grid(gc, rows: list[dict], folder: Path, plt) -> Path | None:
    """The first ambiguous prompt: one row per method@scale (and backbone), one column per seed (and its start)."""
    from .suites import slugify

    prompt = next((r["prompt"] for r in rows if r["kind"] == "ambiguous"), None)
    if prompt is None:
        return None
    sel = [r for r in rows if r["prompt"] == prompt]
    keys = list(dict.fromkeys((r["method"], r["backbone"]) for r in sel))
    seeds = sorted({int(r["seed"]) for r in sel})
    fig, axes = plt.subplots(len(keys), len(seeds), figsize=(1.3 * len(seeds) + 1.6, 1.3 * len(keys) + 0.5),
                             squeeze=False)
    for i, key in enumerate(keys):
        for j, seed in enumerate(seeds):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            row = next((r for r in sel if (r["method"], r["backbone"]) == key and int(r["seed"]) == seed), None)
            image = _result_image(row) if row else None
            if image is not None:
                ax.imshow(image)
            elif row is not None:  # restored from a csv whose run folder is not on this machine
                ax.text(0.5, 0.5, "no picture\nhere", ha="center", va="center", fontsize=6, transform=ax.transAxes)
            if j == 0:
                ax.set_ylabel(key[0] + ("" if key[1] == "2d" else f"\n{key[1]}"), fontsize=7)
            if i == 0:
                start = next((r.get("start") for r in sel if int(r["seed"]) == seed), "")
                ax.set_title(f"seed {seed}" + (f", from {start}" if gc.start_colours else ""), fontsize=7)
    fig.suptitle(prompt, fontsize=9)
    fig.tight_layout()
    path = folder / f"grid_{slugify(prompt)}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _result_image(row: dict):
    """2D: image.png; 3D: the first evaluation view of views.png. None when missing."""
    from PIL import Image

    run = Path(row["run_dir"])
    try:
        if (run / "image.png").exists():
            return Image.open(run / "image.png").convert("RGB")
        from .t3bench import view_tiles

        return view_tiles(run)[0]
    except (OSError, KeyError, ValueError, IndexError):
        return None
