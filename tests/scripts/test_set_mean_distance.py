"""scripts/set_mean_distance.py: the pixel average of a prompt's completions against its nearest completion."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _rows(*prompts):
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "set_mean_distance.py"), *prompts],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    rows = [line.strip("| ").split(" | ") for line in out.splitlines()[2:]]
    return {r[0]: (int(r[1]), r[2], float(r[3])) for r in rows}


def test_colourless_average_sits_at_gray_and_shapeless_average_at_no_shape():
    rows = _rows("a cube", "a red object")
    n, nearest, db = rows["a cube"]
    assert (n, nearest) == (8, "a gray cube") and db > 25  # the palette's mean is (almost) its gray
    n, nearest, db = rows["a red object"]
    assert n == 6 and nearest.startswith("a red ") and db < 20  # the mean of 6 shapes is no shape
