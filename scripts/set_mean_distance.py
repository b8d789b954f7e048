"""How far the pixel average of a prompt's completions lies from its nearest completion.

    python scripts/set_mean_distance.py                       # the ambiguous prompts of the headline set
    python scripts/set_mean_distance.py "a cube" "a red object"

For each prompt: the completions' canonical renders at the benchmark's evaluation views (8 views, 32²), their
pixel mean, and the mean PSNR of that average against its nearest completion and against the median completion.
Where the average lies as close to one completion as two renders of the same image at a few grey levels apart
(PSNR ≳ 25 dB), no image metric can tell an averaged result from that completion.
"""

from __future__ import annotations

import argparse
import statistics

from lods.bench.gap import headline_prompts
from lods.evaluate.metrics import psnr
from lods.evaluate.set_metrics import average_completion, prompt_spec, truth_set
from lods.render.cameras import evaluation_cameras


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("prompts", nargs="*")
    args = ap.parse_args()
    prompts = args.prompts or [p for p in headline_prompts() if not prompt_spec(p).specified]
    cameras = evaluation_cameras(8)
    print("| prompt | completions | nearest to the average | PSNR (dB) | median completion's PSNR (dB) |")
    print("|---|---|---|---|---|")
    for prompt in prompts:
        truth = truth_set(prompt_spec(prompt), cameras, 32)
        caption, db = average_completion(truth)
        mean = truth.rgb.mean(0)
        median = statistics.median(float(psnr(mean, rgb).mean()) for rgb in truth.rgb)
        print(f"| {prompt} | {len(truth)} | {caption} | {db:.1f} | {median:.1f} |")


if __name__ == "__main__":
    main()
