"""The compact tables of docs/results.md, from a guidance-gap benchmark's results.csv.

    python scripts/gap_tables.py runs/gap2d/results.csv
    python scripts/gap_tables.py runs/gap3d/results.csv --entries sds@7.5,sds@30,vsd@7.5,lods-embedding@1000
    python scripts/gap_tables.py runs/gap-headline/results.csv --baseline sds@7.5 --time-seeds 0,2

Prints Markdown tables: per grid entry, mean ± std over prompts × seeds of the finished runs, split by prompt
kind (ambiguous, specified), with diversity (mean over ambiguous prompts of the distinct nearest completions its
seeds reach); then, on every colourless prompt, the saturation of each seed's result and its nearest completion's
colour; then, on the prompts whose completions' pixel average is itself (nearly) a completion (colourless prompts:
the gray one), how many runs land on that completion against how many would if each drew its completion as the
world does (uniformly), and the chance of at least that many (in 3D, runs that keep the gray start's colour land
there too: scripts/probe_init_colour.py). With runs from coloured starts (`lods bench gap --start-colours`), a table of
the runs on colourless prompts by start: how many end at their start's completion (the prompt's open colours filled
with the start's) and how many at the gray one, against the world's expectation (--starts: that table for any csv,
e.g. one whose runs all started gray). PSNR and IoU (best of the completion set) are shown for 3D results only:
in 2D they are only indicative. With --baseline, a last table: each entry minus the baseline on the same prompt, seed and backbone (mean ± standard
error, and on how many pairs the entry is better). --time-seeds: the seeds whose runs the time column averages (e.g.
those that ran on otherwise idle cores). --prompts FILE: only the runs of the prompts listed there (e.g. the 3DGS
headline on the NeRF subset's prompts). --seeds: only the runs of these seeds (e.g. seed 0 of a 3-seed benchmark,
beside a 1-seed one).
"""

from __future__ import annotations

import argparse
import statistics

from lods.bench.batch import read_prompts
from lods.bench.results import is_finished, read_csv
from lods.bench.stats import mean_std as _mean_std
from lods.bench.stats import metric_value, paired_difference, tail_probability
from lods.errors import UserError
from lods.evaluate.set_metrics import diversity as set_diversity
from lods.evaluate.set_metrics import average_completion, prompt_spec, truth_set
from lods.render.cameras import evaluation_cameras

AVERAGE_LIKE_DB = 25.0  # the average this close to a completion: no image metric tells the two apart


def mean_std(values, digits: int = 2) -> str:
    m, s, n = _mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}" if n else "–"


def diversity(rows: list[dict]) -> float | None:
    """Mean over prompts of the distinct nearest completions that the rows' seeds reach."""
    by_prompt: dict[str, list[dict]] = {}
    for r in rows:
        by_prompt.setdefault(r["prompt"], []).append(r)
    reached = [set_diversity([r["nearest_completion"] for r in rs], int(rs[0]["n_completions"] or 1))["diversity"]
               for rs in by_prompt.values()]
    return statistics.mean(reached) if reached else None


def entry_table(rows: list[dict], entries: list[str], three_d: bool, time_seeds: set[str] | None = None) -> list[str]:
    kinds = {"ambiguous": ["realism", "judge_confidence", "saturation", "abs_saturation_error"],
             "specified": ["realism", "judge_confidence"]}
    if three_d:
        kinds = {k: v + ["psnr", "iou"] for k, v in kinds.items()}
    head = (["method@scale", "runs"] + [f"ambiguous: {m}" for m in kinds["ambiguous"]] + ["diversity"]
            + [f"specified: {m}" for m in kinds["specified"]] + ["learned fit", "s / run"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for entry in entries:
        sel = [r for r in rows if r["method"] == entry]
        cells = [entry, str(len(sel))]
        for kind, metrics in kinds.items():
            part = [r for r in sel if r["kind"] == kind]
            for m in metrics:
                cells.append(mean_std((metric_value(r, m) for r in part), 3 if m == "realism" else 1 if m == "psnr" else 2))
            if kind == "ambiguous":
                d = diversity(part)
                cells.append("–" if d is None else f"{d:.2f}")
        cells.append(mean_std((metric_value(r, "learned_fit") for r in sel), 1))
        secs, _, n = _mean_std(metric_value(r, "seconds") for r in sel if time_seeds is None or r["seed"] in time_seeds)
        cells.append(f"{secs:.0f}" if n else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def colourless_table(rows: list[dict], entries: list[str]) -> list[str]:
    prompts = list(dict.fromkeys(r["prompt"] for r in rows
                                 if all(o.color is None for o in prompt_spec(r["prompt"]).objects)))
    lines = ["| prompt | " + " | ".join(entries) + " |", "|" + "---|" * (len(entries) + 1)]
    for p in prompts:
        cells = []
        for entry in entries:
            sel = sorted((r for r in rows if r["prompt"] == p and r["method"] == entry), key=lambda r: int(r["seed"]))
            cells.append(", ".join(f"{float(r['saturation']):.2f} ({r['nearest_completion'].split()[1]})" for r in sel)
                         or "–")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return lines


def average_table(rows: list[dict], entries: list[str]) -> list[str]:
    """Per entry: runs on prompts whose average is a completion, how many land on it, the world's expectation."""
    targets = {}
    for p in dict.fromkeys(r["prompt"] for r in rows if r["kind"] == "ambiguous"):
        truth = truth_set(prompt_spec(p), evaluation_cameras(8), 32)
        caption, db = average_completion(truth)
        if db >= AVERAGE_LIKE_DB:
            targets[p] = (caption, len(truth))
    lines = ["prompts whose average is a completion: "
             + (", ".join(f"{p} → {c}" for p, (c, _) in targets.items()) or "none"), "",
             "| entry | runs | at the average's completion | expected if drawn as the world draws | P(at least as many) |",
             "|---|---|---|---|---|"]
    for entry in entries:
        sel = [r for r in rows if r["method"] == entry and r["prompt"] in targets]
        if not sel:
            continue
        hits = sum(r["nearest_completion"] == targets[r["prompt"]][0] for r in sel)
        chances = [1.0 / targets[r["prompt"]][1] for r in sel]  # the world draws each completion alike
        lines.append(f"| {entry} | {len(sel)} | {hits} | {sum(chances):.2f} | {tail_probability(hits, chances):.2g} |")
    return lines


DEFAULT_STARTS = ("", "gray", "noise")  # a row's start where no colour was given (before the column: "")


def start_completion(prompt: str, start: str) -> str | None:
    """The completion of a colourless prompt with every open colour the start's; None if a shape is open too."""
    import dataclasses

    spec = prompt_spec(prompt)
    if any(o.shape is None for o in spec.objects) or all(o.color is not None for o in spec.objects):
        return None
    filled = dataclasses.replace(spec, objects=tuple(o if o.color else dataclasses.replace(o, color=start)
                                                     for o in spec.objects))
    scenes = filled.completions()
    return scenes[0].caption() if scenes else None


def start_table(rows: list[dict], entries: list[str]) -> list[str]:
    """Per entry and start: runs on colourless prompts, how many end at the start's completion and at the gray one."""
    from lods.world.shapes import COLORS

    def start(r):  # a csv from before the column: the default start of its dims
        return r.get("start") or ("noise" if r["dims"] == "2d" else "gray")

    sel = [r for r in rows if start_completion(r["prompt"], "gray")]
    lines = ["| entry | start | runs | at the start's completion | at the gray completion | expected each if drawn "
             "as the world draws | P(at least as many at the start's) |", "|---|---|---|---|---|---|---|"]
    for entry in entries:
        for colour in dict.fromkeys(start(r) for r in sel if r["method"] == entry):
            runs = [r for r in sel if r["method"] == entry and start(r) == colour]
            at_gray = sum(r["nearest_completion"] == start_completion(r["prompt"], "gray") for r in runs)
            chances = [1.0 / int(r["n_completions"]) for r in runs]
            if colour in COLORS:
                at_start = sum(r["nearest_completion"] == start_completion(r["prompt"], colour) for r in runs)
                cells = [str(at_start), str(at_gray), f"{sum(chances):.2f}", f"{tail_probability(at_start, chances):.2g}"]
            else:  # noise: no colour to keep
                cells = ["–", str(at_gray), f"{sum(chances):.2f}", "–"]
            lines.append(f"| {entry} | {colour} | {len(runs)} | " + " | ".join(cells) + " |")
    return lines


PAIRED = [("realism", "Δ realism ↓", False, 3), ("abs_saturation_error", "Δ abs. sat. error ↓", False, 3),
          ("psnr", "Δ PSNR (dB) ↑", True, 2), ("judge_confidence", "Δ judge conf. ↑", True, 3)]


def paired_table(rows: list[dict], entries: list[str], baseline: str, three_d: bool) -> list[str]:
    base = {(r["prompt"], r["seed"], r["backbone"]): r for r in rows if r["method"] == baseline}
    if not base:
        raise SystemExit(f"no finished run of the baseline {baseline}")
    metrics = [m for m in PAIRED if three_d or m[0] != "psnr"]
    head = ["entry", "pairs"] + [c for _, name, _, _ in metrics for c in (name, "better")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for entry in entries:
        pairs = [(r, base[key]) for r in rows if r["method"] == entry
                 for key in [(r["prompt"], r["seed"], r["backbone"])] if key in base]
        if entry == baseline or not pairs:
            continue
        cells = [entry, str(len(pairs))]
        for m, _, higher, digits in metrics:
            p = paired_difference(pairs, m, higher)
            cells += ["–", "–"] if p is None else [f"{p.mean:+.{digits}f} ± {p.stderr:.{digits}f}", f"{p.better}/{p.n}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="a results.csv written by `lods bench gap`")
    ap.add_argument("--entries", help="comma-separated grid entries for the colourless table (default: all)")
    ap.add_argument("--baseline", help="a grid entry: add the table of paired differences against it")
    ap.add_argument("--time-seeds", help="comma-separated seeds whose runs the time column averages (default: all)")
    ap.add_argument("--prompts", help="a prompt file (one per line, # comments): only these prompts' runs")
    ap.add_argument("--seeds", help="comma-separated seeds: only these seeds' runs (default: all)")
    ap.add_argument("--starts", action="store_true", help="print the table by start colour even if every run "
                                                          "started from the default")
    args = ap.parse_args()
    rows = [r for r in read_csv(args.results) if is_finished(r["status"])]
    if args.prompts:
        try:
            wanted = set(read_prompts(args.prompts))  # the format `lods bench gap --prompts` reads
        except UserError as e:
            raise SystemExit(str(e)) from None
        rows = [r for r in rows if r["prompt"] in wanted]
    if args.seeds:
        seeds = set(args.seeds.split(","))
        rows = [r for r in rows if str(r["seed"]) in seeds]
    if not rows:
        raise SystemExit(f"no finished run in {args.results}")
    entries = list(dict.fromkeys(r["method"] for r in rows))
    three_d = rows[0]["dims"] == "3d"
    time_seeds = set(args.time_seeds.split(",")) if args.time_seeds else None
    print("\n".join(entry_table(rows, entries, three_d, time_seeds)))
    print()
    print("\n".join(colourless_table(rows, args.entries.split(",") if args.entries else entries)))
    print()
    print("\n".join(average_table(rows, entries)))
    if args.starts or any(r.get("start", "") not in DEFAULT_STARTS for r in rows):
        print()
        print("\n".join(start_table(rows, entries)))
    if args.baseline:
        print()
        print("\n".join(paired_table(rows, entries, args.baseline, three_d)))


if __name__ == "__main__":
    main()
