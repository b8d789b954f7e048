"""scripts/gap_tables.py, the tables of docs/results.md, on a small results.csv whose figures are known."""

import csv
import subprocess
import sys
from pathlib import Path

from lods.bench.gap import COLUMNS

ROOT = Path(__file__).resolve().parents[2]


def _row(method, prompt, kind, seed, nearest, saturation, realism, dims="3d", status="ok", **extra):
    row = {c: "" for c in COLUMNS}
    row.update(dims=dims, method=method, prompt=prompt, kind=kind, seed=seed, nearest_completion=nearest,
               saturation=saturation, saturation_error=-saturation, realism=realism, judge_confidence=1.0,
               psnr=20.0, iou=0.5, status=status, **{"seconds": 10, **extra})
    return row


def _write(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)


def _run(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "gap_tables.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def _entry_rows(stdout):
    """The first table's rows, by their first cell, split into cells."""
    return {line.split(" | ")[0]: line.split(" | ") for line in stdout.split("\n\n")[0].splitlines()[2:]}


def test_tables_from_a_known_results_csv(tmp_path):
    rows = [
        _row("sds@7.5", "a cube", "ambiguous", 0, "a gray cube", 0.1, 0.02),
        _row("sds@7.5", "a cube", "ambiguous", 1, "a gray cube", 0.3, 0.04, status="resumed"),
        _row("sds@7.5", "a red cube", "specified", 0, "a red cube", 0.8, 0.01),
        _row("sds@7.5", "a red cube", "specified", 1, "", 0.0, 0.0, status="not run"),
        _row("lods-embedding@1000", "a cube", "ambiguous", 0, "a blue cube", 0.7, 0.1, learned_fit=2.0),
        _row("lods-embedding@1000", "a cube", "ambiguous", 1, "a green cube", 0.6, 0.2, learned_fit=4.0),
        _row("lods-embedding@1000", "a red cube", "specified", 1, "a red cube", 0.9, 0.5, status="failed: boom"),
    ]
    _write(tmp_path / "results.csv", rows)
    proc = _run(tmp_path / "results.csv")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    sds = next(line for line in lines if line.startswith("| sds@7.5 |")).split(" | ")
    lods = next(line for line in lines if line.startswith("| lods-embedding@1000 |")).split(" | ")
    assert sds[1] == "3" and lods[1] == "2"  # a resumed run counts; the failed and the not-run runs are left out
    assert sds[2] == "0.030 ± 0.014"  # ambiguous realism: mean ± std of 0.02 and 0.04
    assert sds[8] == "1.00" and lods[8] == "2.00"  # diversity: distinct nearest completions over the seeds
    assert sds[9] == "0.010 ± 0.000" and lods[9] == "–"  # specified realism; no finished specified LODS run
    assert lods[-2] == "3.0 ± 1.4"  # learned fit
    cube = next(line for line in lines if line.startswith("| a cube |"))
    assert "0.10 (gray), 0.30 (gray)" in cube and "0.70 (blue), 0.60 (green)" in cube
    assert not any(line.startswith("| a red cube |") for line in lines)  # a coloured prompt has no row there


def test_paired_table_and_time_seeds(tmp_path):
    rows = [
        _row("sds@7.5", "a cube", "ambiguous", 0, "a gray cube", 0.1, 0.02, seconds=10),
        _row("sds@7.5", "a cube", "ambiguous", 1, "a gray cube", 0.3, 0.04, seconds=30),
        _row("lods-embedding@1000", "a cube", "ambiguous", 0, "a blue cube", 0.7, 0.10, seconds=20),
        _row("lods-embedding@1000", "a cube", "ambiguous", 1, "a green cube", 0.6, 0.20, seconds=60),
        _row("lods-embedding@1000", "a cone", "ambiguous", 0, "a red cone", 0.6, 0.20),  # no baseline run: no pair
    ]
    _write(tmp_path / "results.csv", rows)
    proc = _run(tmp_path / "results.csv", "--baseline", "sds@7.5", "--time-seeds", "0")
    assert proc.returncode == 0, proc.stderr
    blocks = proc.stdout.strip().split("\n\n")
    entry_block, paired_block = blocks[0].splitlines(), blocks[-1].splitlines()
    assert len(paired_block) == 3  # head, rule, one entry: none for the baseline itself
    paired = paired_block[2].split(" | ")
    assert paired[:2] == ["| lods-embedding@1000", "2"]
    assert paired[2:4] == ["+0.120 ± 0.040", "0/2"]  # realism: +0.08 and +0.16, both worse
    assert paired[4:6] == ["+0.450 ± 0.150", "0/2"]  # abs. saturation error: 0.7 − 0.1 and 0.6 − 0.3
    entry_rows = {line.split(" | ")[0]: line for line in entry_block[2:]}
    assert entry_rows["| sds@7.5"].endswith("| 10 |")  # the time column: seed 0 only
    assert entry_rows["| lods-embedding@1000"].endswith("| 15 |")
    assert _run(tmp_path / "results.csv", "--baseline", "vsd@7.5").returncode != 0
    (tmp_path / "prompts.txt").write_text("# only the cone\na cone\n")
    only_cone = _run(tmp_path / "results.csv", "--prompts", tmp_path / "prompts.txt").stdout
    cone_rows = _entry_rows(only_cone)
    assert list(cone_rows) == ["| lods-embedding@1000"] and cone_rows["| lods-embedding@1000"][1] == "1"
    seed1_rows = _entry_rows(_run(tmp_path / "results.csv", "--seeds", "1").stdout)
    assert {k: v[1] for k, v in seed1_rows.items()} == {"| sds@7.5": "1", "| lods-embedding@1000": "1"}
    assert seed1_rows["| sds@7.5"][2] == "0.040 ± 0.000"  # seed 1's realism alone


def test_average_table_counts_runs_at_the_average_completion(tmp_path):
    rows = [_row("sds@1", "a cube", "ambiguous", seed, "a gray cube", 0.1, 0.02) for seed in range(3)]
    rows += [_row("lods-embedding@1000", "a cube", "ambiguous", 0, "a red cube", 0.8, 0.1),
             _row("lods-embedding@1000", "a cube", "ambiguous", 1, "a gray cube", 0.1, 0.1),
             _row("sds@1", "a red object", "ambiguous", 0, "a red cylinder", 0.8, 0.1)]  # its average is no shape
    _write(tmp_path / "results.csv", rows)
    proc = _run(tmp_path / "results.csv")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "prompts whose average is a completion: a cube → a gray cube" in lines
    table = {line.split(" | ")[0]: line.split(" | ") for line in lines
             if line.count("|") == 6 and line.split(" | ")[0] in ("| sds@1", "| lods-embedding@1000")}
    assert table["| sds@1"][1:4] == ["3", "3", "0.38"]  # "a red object" is not counted; 3 × 1/8 expected
    assert table["| sds@1"][4] == f"{(1 / 8) ** 3:.2g} |"
    assert table["| lods-embedding@1000"][1:5] == ["2", "1", "0.25", f"{1 - (7 / 8) ** 2:.2g} |"]


def test_start_table_counts_runs_at_the_starts_and_at_the_gray_completion(tmp_path):
    rows = [_row("sds@1", "a cube", "ambiguous", 0, "a blue cube", 0.7, 0.02, start="blue"),
            _row("sds@1", "a cube", "ambiguous", 1, "a green cube", 0.7, 0.02, start="green"),
            _row("sds@1", "a cube to the left of a red sphere", "ambiguous", 2, "a yellow cube to the left of a red sphere",
                 0.7, 0.02, start="yellow"),
            _row("lods-embedding@1000", "a cube", "ambiguous", 0, "a gray cube", 0.1, 0.1, start="blue"),
            _row("lods-embedding@1000", "a cube", "ambiguous", 1, "a gray cube", 0.1, 0.1, start="green"),
            _row("lods-embedding@1000", "a red object", "ambiguous", 0, "a red cube", 0.8, 0.1, start="blue")]
    for r in rows:
        r["n_completions"] = 8
    _write(tmp_path / "results.csv", rows)
    proc = _run(tmp_path / "results.csv")
    assert proc.returncode == 0, proc.stderr
    table = [line.split(" | ") for line in proc.stdout.split("\n\n")[-1].splitlines()[2:]]
    cells = {(t[0], t[1]): t[2:] for t in table}
    assert cells[("| sds@1", "blue")] == ["1", "1", "0", "0.12", "0.12 |"]  # ends at its start: chance 1/8
    assert cells[("| sds@1", "yellow")][:3] == ["1", "1", "0"]  # the open colour filled, the given one kept
    assert cells[("| lods-embedding@1000", "blue")][:3] == ["1", "0", "1"]  # "a red object" has an open shape: left out
    assert cells[("| lods-embedding@1000", "green")][:3] == ["1", "0", "1"]
    # a csv of gray starts only: no table unless asked, and then every run under gray
    for r in rows:
        r["start"] = ""
    _write(tmp_path / "gray.csv", rows)
    assert "at the start's completion" not in _run(tmp_path / "gray.csv").stdout
    asked = _run(tmp_path / "gray.csv", "--starts").stdout.split("\n\n")[-1].splitlines()[2:]
    assert [line.split(" | ")[:4] for line in asked] == [["| sds@1", "gray", "3", "0"], ["| lods-embedding@1000", "gray", "2", "2"]]


def test_no_finished_run_is_an_error(tmp_path):
    _write(tmp_path / "results.csv", [_row("sds@7.5", "a cube", "ambiguous", 0, "", 0.1, 0.02, status="not run")])
    proc = _run(tmp_path / "results.csv")
    assert proc.returncode != 0 and "no finished run" in proc.stderr
