"""The image-to-3D evaluation on world renders: reconstruction only vs SDS vs LODS-embedding (gs, fast preset).

    nice -n 10 python scripts/eval_image_to_3d.py --out runs/image_to_3d_eval

For every category, `--per-category` front renders (scripts/make_world_images.py) are reconstructed with every
method of `--methods`, with the true caption as the prompt (so the novel views are scored against the right 3D
truth; the judge's own naming of each reference is reported apart). Runs already finished in OUT are reused and
unfinished ones resumed, so the command can be rerun after an interruption. Writes OUT/results.json (one row per
run) and OUT/table.md (means per category and method), and prints the table.

Columns: reference-view PSNR / SSIM (render at the input camera vs the input), novel-view PSNR / SSIM / IoU against
the truth at the 8 evaluation cameras (elevation 20, every 45 degrees, 32 px), judge alignment (the fraction of
novel views in which the judge recognises the caption, and R@1 among the category's captions), and the judge's
feature similarity between the reference image and the novel views (cosine of penultimate features); "truth"
gives that similarity for the true 3D object, the ceiling of that column.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_world_images import make_world_images  # noqa: E402

from lods.errors import UserError  # noqa: E402
from lods.pipelines.run_config import ExportConfig  # noqa: E402
from lods.pipelines.image_to_3d import (  # noqa: E402
    REFERENCE_NAME,
    image_preset_config,
    judge_caption,
    load_image_run_config,
    run_image_to_3d,
)
from lods.pipelines.reference_image import read_reference, reference_targets  # noqa: E402
from lods.utils.io import atomic_write_json, atomic_write_text  # noqa: E402
from lods.world.scene import CATEGORIES, parse_prompt  # noqa: E402

COLUMNS = [
    ("ref_psnr", "ref PSNR", "{:.1f}"), ("ref_ssim", "ref SSIM", "{:.3f}"),
    ("novel_psnr", "novel PSNR", "{:.2f}"), ("novel_ssim", "novel SSIM", "{:.3f}"), ("novel_iou", "novel IoU", "{:.3f}"),
    ("recognized", "judge recognised", "{:.2f}"), ("r_at_1", "judge R@1", "{:.2f}"),
    ("feat_sim", "judge feature sim.", "{:.3f}"), ("seconds", "s / run", "{:.0f}"),
]


def truth_feature_similarity(caption: str, rgba, n_views: int) -> float:
    """The judge's feature similarity between the reference image and the true object's novel views."""
    import torch.nn.functional as F

    from lods.render.cameras import evaluation_cameras
    from lods.world.judge import Judge
    from lods.world.render import render_scene

    judge = Judge.load()
    scene, _ = parse_prompt(caption)
    truth = render_scene(scene, evaluation_cameras(n_views), size=32)["rgb"]
    ref = reference_targets(rgba)[0]
    return float(F.cosine_similarity(judge.features(truth), judge.features(ref).expand(n_views, -1), dim=1).mean())


def run_one(image: Path, caption: str, method: str, out: Path, args) -> dict:
    done = out / "metrics.json"
    if not done.exists():
        if (out / "checkpoints" / "last.safetensors").exists():
            cfg = load_image_run_config(out)
            run_image_to_3d(cfg, resume=True)
        else:
            if out.exists():  # an attempt that died before its first checkpoint
                import shutil

                shutil.rmtree(out)
            cfg = image_preset_config("fast", "gs", method)
            cfg.image, cfg.prompt, cfg.out, cfg.seed = str(image), caption, str(out), args.seed
            cfg.prior = args.prior
            if args.steps:
                cfg.steps = args.steps
            if args.views:
                cfg.cameras.views_per_step = args.views
            cfg.export = ExportConfig(mesh_resolution=32, turntable_frames=12, turntable_size=64, views_size=64, eval_views=8)
            run_image_to_3d(cfg)
    m = json.loads(done.read_text())
    gt, info = m["ground_truth"], m["image_to_3d"]
    return {
        "ref_psnr": info["reference_view"]["psnr"], "ref_ssim": info["reference_view"]["ssim"],
        "novel_psnr": gt["psnr"], "novel_ssim": gt["ssim"], "novel_iou": gt["iou"],
        "recognized": gt["recognized_views"] / gt["n_views"], "r_at_1": gt["r_at_1"],
        "feat_sim": info["judge_feature_similarity"], "seconds": m["seconds"], "steps": m["steps"],
    }


def table(rows: list[dict], methods: list[str], extra: dict) -> str:
    head = "| category | method | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for category in list(CATEGORIES) + ["all"]:
        sel_c = [r for r in rows if category == "all" or r["category"] == category]
        if not sel_c:
            continue
        for method in methods:
            sel = [r for r in sel_c if r["method"] == method]
            if not sel:
                continue
            cells = [fmt.format(sum(r[k] for r in sel) / len(sel)) for k, _, fmt in COLUMNS]
            lines.append(f"| {category} (n={len(sel)}) | {method} | " + " | ".join(cells) + " |")
        t = [extra[r["file"]]["truth_feat_sim"] for r in sel_c if r["method"] == methods[0]]
        lines.append(f"| {category} | truth (ceiling) | " + " | ".join(
            ["", "", "", "", "1.000", "", "", f"{sum(t) / len(t):.3f}", ""]) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/image_to_3d_eval")
    ap.add_argument("--images", default=None, help="Folder of world images with index.json (default: OUT/images, made).")
    ap.add_argument("--per-category", type=int, default=5)
    ap.add_argument("--size", type=int, default=64, help="Size of the world images.")
    ap.add_argument("--methods", default="none,sds,lods-embedding")
    ap.add_argument("--steps", type=int, default=0, help="Steps per run (0: the fast preset's).")
    ap.add_argument("--views", type=int, default=0, help="Novel views per step (0: the fast preset's).")
    ap.add_argument("--prior", default=None, help="Prior folder (default: the embedded prior).")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    images = Path(args.images) if args.images else out / "images"
    if not (images / "index.json").exists():
        make_world_images(images, args.per_category, args.size, args.seed)
    index = json.loads((images / "index.json").read_text())
    index = [r for c in CATEGORIES for r in [x for x in index if x["category"] == c][: args.per_category]]
    methods = args.methods.split(",")
    rows, extra = [], {}
    t0 = time.time()
    for item in index:
        image = images / item["file"]
        for method in methods:
            run_dir = out / "runs" / f"{Path(item['file']).stem}-{method}"
            try:
                row = run_one(image, item["caption"], method, run_dir, args)
            except UserError as e:
                sys.exit(f"{run_dir}: {e}")
            rows.append({"file": item["file"], "caption": item["caption"], "category": item["category"], "method": method, **row})
            print(f"[{time.time() - t0:6.0f} s] {item['file']} {method}: ref PSNR {row['ref_psnr']:.1f}, "
                  f"novel PSNR {row['novel_psnr']:.2f}, IoU {row['novel_iou']:.3f}", flush=True)
        rgba = read_reference(out / "runs" / f"{Path(item['file']).stem}-{methods[0]}" / REFERENCE_NAME)
        named = judge_caption(reference_targets(rgba)[0])
        extra[item["file"]] = {"judge_caption": named, "judge_named_correctly": named == parse_prompt(item["caption"])[0].canonical().caption(),
                               "truth_feat_sim": truth_feature_similarity(item["caption"], rgba, 8)}
    text = table(rows, methods, extra)
    named_ok = sum(e["judge_named_correctly"] for e in extra.values())
    summary = {"rows": rows, "images": extra, "methods": methods, "args": vars(args),
               "judge_named_correctly": f"{named_ok}/{len(extra)}", "wall_seconds": time.time() - t0}
    atomic_write_json(out / "results.json", summary)
    atomic_write_text(out / "table.md", text + f"\n\nThe judge named {named_ok}/{len(extra)} references correctly (no --prompt).\n")
    print(text)
    print(f"judge named {named_ok}/{len(extra)} references correctly; {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
