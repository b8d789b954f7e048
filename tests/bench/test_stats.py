"""The public statistics of benchmark rows (bench/stats.py), and scripts/compare_runs.py built on it."""

import math
import subprocess
import sys
from pathlib import Path

import pytest

from lods.bench.results import COLUMNS, read_csv, write_csv
from lods.bench.stats import (
    SUMMARY_METRICS,
    format_mean_std,
    group_key,
    key_label,
    mean_std,
    metric_value,
    paired_cells,
    paired_difference,
    tail_probability,
)

ROOT = Path(__file__).resolve().parents[2]


def row(**kw):
    r = {c: "" for c in COLUMNS}
    r.update(method="sds", backbone="gs", cfg="", seed=0, category="single", prompt="a red cube", status="ok")
    r.update(kw)
    return r


def test_metric_values_from_csv_cells():
    r = row(psnr="20.5", recognized_views="3", n_views="4", saturation_error="-0.25", iou="")
    assert metric_value(r, "psnr") == 20.5
    assert metric_value(r, "recognized_frac") == 0.75
    assert metric_value(r, "abs_saturation_error") == 0.25
    assert math.isnan(metric_value(r, "iou")) and math.isnan(metric_value(r, "ssim"))
    assert math.isnan(metric_value(row(psnr="failed"), "psnr"))


def test_mean_std_skips_missing_values():
    mu, sd, n = mean_std([1.0, 3.0, math.nan])
    assert (mu, n) == (2.0, 2) and sd == pytest.approx(math.sqrt(2))
    assert mean_std([5.0])[1:] == (0.0, 1)
    assert math.isnan(mean_std([])[0]) and format_mean_std(math.nan, math.nan) == "–"
    assert format_mean_std(2.0, math.sqrt(2)) == "2 ± 1.4"


def test_paired_difference_counts_wins_by_direction():
    pairs = [(row(psnr=p + d, seconds=10 + d), row(psnr=p, seconds=10)) for p, d in ((20, 1.0), (21, 2.0), (19, -0.5), (18, 0.0))]
    psnr = paired_difference(pairs, "psnr", higher=True)
    assert (psnr.n, psnr.better, psnr.worse) == (4, 2, 1)
    assert psnr.mean == pytest.approx(0.625)
    assert psnr.stderr == pytest.approx(1.1086778913041726 / 2)
    time = paired_difference(pairs, "seconds", higher=False)  # lower is better: a slower run is worse
    assert (time.better, time.worse) == (1, 2)
    assert paired_difference([(row(), row())], "psnr", True) is None
    metrics = [m for m in SUMMARY_METRICS if m[0] in ("psnr", "iou")]
    assert paired_cells(pairs, metrics) == (["+0.625 ± 0.55", "–"], ["2/3", "–"])


def test_groups_carry_the_cfg_scale():
    assert group_key(row(method="lods-embedding", cfg="1000000.0")) == ("lods-embedding", "gs", "inf")
    assert key_label(("lods-embedding", "gs", "inf")) == "lods-embedding gs s=∞"
    assert key_label(group_key(row(cfg=""))) == "sds gs"


def test_compare_runs_pairs_two_results_files(tmp_path):
    a = [row(seed=s, prompt=p, psnr=20.0 + s, seconds=10.0) for s in range(2) for p in ("a red cube", "a blue cone")]
    b = [dict(r, psnr=r["psnr"] + 1.0, seconds=12.0, method="lods-embedding") for r in a]
    write_csv(tmp_path / "a.csv", a)
    write_csv(tmp_path / "b.csv", b)
    assert len(read_csv(tmp_path / "a.csv")) == 4
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare_runs.py"), str(tmp_path / "a.csv"),
                          str(tmp_path / "b.csv")], capture_output=True, text=True, check=True).stdout
    assert "| all | 4 | psnr | 20.5 | 21.5 | +1 ± 0 | 4/4 |" in out
    assert "| all | 4 | seconds | 10 | 12 | +2 ± 0 | 0/4 |" in out


def test_tail_probability_of_a_poisson_binomial():
    assert tail_probability(0, [0.3, 0.9]) == 1.0
    assert tail_probability(2, [1 / 8] * 2) == pytest.approx(1 / 64)
    assert tail_probability(1, [0.5, 0.5]) == pytest.approx(0.75)
    assert tail_probability(2, [0.5, 0.25]) == pytest.approx(0.125)  # unequal chances: both must land
    assert tail_probability(3, [0.5, 0.5]) == 0.0
    with pytest.raises(ValueError):
        tail_probability(1, [1.5])
