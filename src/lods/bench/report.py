"""The quality benchmark's summary.md (mean ± std per group and category, paired differences against SDS, the
command, the hardware, the date), the exact command line it records, and the line printed per finished run."""

from __future__ import annotations

import math
from pathlib import Path

from .config import BenchConfig
from .hardware import hardware_info, hardware_line, prior_line
from .stats import (
    SUMMARY_METRICS,
    cfg_float,
    cfg_label,
    format_mean_std,
    group_rows,
    mean_std,
    metric_value,
    metrics_present,
    paired_cells,
)
from .suites import SuitePrompt


def render_summary(bc: BenchConfig, rows: list[dict], suite: list[SuitePrompt], started, wall: float,
                   plots: list[Path], notes: list[str]) -> str:
    with_cfg = bc.with_cfg
    ok = [r for r in rows if not str(r["status"]).startswith("failed")]
    failed = [r for r in rows if str(r["status"]).startswith("failed")]
    metrics = metrics_present(ok) or [m for m in SUMMARY_METRICS if m[0] == "seconds"]
    hw = hardware_info(bc.device or "cpu")
    lines = [f"# Benchmark: {bc.title} ({bc.suite} suite)", ""]
    lines += [f"- Command: `{bc.command or '(called from Python)'}`",
              f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')}; wall time {wall / 60:.1f} min "
              + (f"on Ray ({bc.ray_address or 'a local instance'}), one task per run" if bc.backend == "ray"
                 else f"with {bc.workers} worker process(es)") + f", {bc.threads} torch thread(s) each",
              f"- Hardware: {hardware_line(hw)}",
              f"- Prior: {prior_line(bc.prior)}",
              f"- Settings: preset {bc.resolved_preset()}, steps {bc.steps or 'preset default'}, seeds 0..{bc.seeds - 1}, "
              f"backbones {', '.join(bc.backbones)}, methods {', '.join(bc.methods)}"
              + (f", CFG scales {', '.join(cfg_label(s) or 'default' for s in bc.cfg_scales)}" if with_cfg else ""),
              f"- Runs: {len(rows)} ({len(ok)} finished, {len(failed)} failed); "
              f"{sum(1 for r in rows if r['status'] == 'done before')} reused from an earlier invocation, "
              f"{sum(1 for r in rows if r['status'] == 'resumed')} resumed", ""]
    lines += ["Mean ± standard deviation over runs (prompts × seeds). PSNR, SSIM, IoU and the saturation error compare "
              "the result with the world's true render at the 8 fixed evaluation views; R@1 and recognised views are "
              "the judge's (world classifier's) scores. Saturation error is signed (negative: paler than the truth). "
              "s / asset is the optimisation loop's time (exports and scoring excluded); with several workers the runs "
              "share the CPU, so it is comparable between methods of one table, not to a machine at rest.", ""]
    for note in notes:
        lines += [f"**Note:** {note}", ""]
    groups = group_rows(ok, with_cfg)
    head = ["method", "backbone", "CFG"]
    for title, subset in [("Overall", None)] + [(f"Category: {c}", c) for c in bc.categories]:
        lines += [f"## {title}", ""]
        lines += ["| " + " | ".join(head + ["runs"] + [m[1] for m in metrics]) + " |",
                  "|" + "---|" * (len(head) + 1 + len(metrics))]
        for key, grp in groups.items():
            sel = [r for r in grp if subset is None or r["category"] == subset]
            if not sel:
                continue
            cells = list(key) + [str(len(sel))]
            for m, *_ in metrics:
                mu, sd, _ = mean_std(metric_value(r, m) for r in sel)
                cells.append(format_mean_std(mu, sd))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += paired_section(ok, bc, with_cfg, metrics)
    if failed:
        lines += ["## Failed runs", ""] + [f"- {r['method']} {r['backbone']} s{r['seed']} “{r['prompt']}”: {r['status']}"
                                           for r in failed] + [""]
    lines += ["## Prompts", ""]
    for c in bc.categories:
        lines.append(f"- {c}: " + "; ".join(f"“{s.prompt}”" for s in suite if s.category == c))
    lines.append("")
    if plots:
        lines += ["## Plots", ""] + [f"- [{p.name}](plots/{p.name})" for p in plots] + [""]
    lines += ["Files: `results.csv` (one row per run), `runs/<method>-<backbone>-s<seed>/<prompt>/` (each run's folder).", ""]
    return "\n".join(lines)


def paired_section(rows: list[dict], bc: BenchConfig, with_cfg: bool, metrics) -> list[str]:
    """Each method against the baseline (SDS) on the same backbone, seed and prompt (and CFG scale in the sweep)."""
    if bc.baseline not in {r["method"] for r in rows}:
        return []
    keyed: dict[tuple, dict] = {}
    for r in rows:
        keyed[(r["method"], r["backbone"], r["seed"], r["prompt"], r["cfg"] if with_cfg else "")] = r
    used = [m for m in metrics if m[3] is not None]
    lines = ["## Paired differences against SDS", "",
             "Method minus SDS on the same backbone, seed and prompt" +
             (" and CFG scale" if with_cfg else ", each method at its own CFG scale (tables above)") +
             ": mean ± standard error of the difference, and how often the method is better (ties excluded).", "",
             "| method | backbone" + (" | CFG" if with_cfg else "") + " | pairs | " + " | ".join(f"Δ {m[1]}" for m in used) +
             " | " + " | ".join(f"better: {m[2]}" for m in used) + " |",
             "|" + "---|" * (3 + with_cfg + 2 * len(used))]
    methods = [m for m in bc.methods if m != bc.baseline]
    cfgs = sorted({r["cfg"] for r in rows if r["method"] in methods}, key=lambda v: cfg_float(v) or 0.0) if with_cfg else [""]
    for method in methods:
        for backbone in bc.backbones:
            for c in cfgs:
                pairs = []
                for (m, b, s, p, cc), r in keyed.items():
                    if m == method and b == backbone and cc == c:
                        base = keyed.get((bc.baseline, b, s, p, cc))
                        if base is not None:
                            pairs.append((r, base))
                if not pairs:
                    continue
                cells = [method, backbone] + ([cfg_label(cfg_float(c)) or "default"] if with_cfg else []) + [str(len(pairs))]
                deltas, wins = paired_cells(pairs, used)
                lines.append("| " + " | ".join(cells + deltas + wins) + " |")
    return lines + [""]


def command_line(name: str, options: dict) -> str:
    """`lods bench NAME --opt value ...` with every option explicit (the exact equivalent of what ran)."""
    import shlex

    parts = ["lods", "bench", name]
    for k, v in options.items():
        flag = "--" + k.replace("_", "-")
        if v is None or v is False:
            continue
        if v is True:
            parts.append(flag)
        elif isinstance(v, (list, tuple)):  # a repeatable option: the flag once per value
            for item in v:
                parts += [flag, shlex.quote(str(item))]
        else:
            parts += [flag, shlex.quote(str(v))]
    return " ".join(parts)


def echo_row(row: dict, done: int, total: int) -> str:
    bits = [f"[{done}/{total}] {row['method']} {row['backbone']}" + (f" cfg {cfg_label(cfg_float(row['cfg']))}" if row["cfg"] != "" else "")
            + f" s{row['seed']} “{row['prompt']}”: {row['status']}"]
    for k, fmt in (("psnr", "PSNR {:.2f}"), ("iou", "IoU {:.2f}"), ("r_at_1", "R@1 {:.0f}"), ("seconds", "{:.0f} s")):
        v = metric_value(row, k)
        if not math.isnan(v):
            bits.append(fmt.format(v))
    return ", ".join(bits)
