"""A stop signal to a benchmark stops the benchmark: it is not recorded as a failed run, no queued run starts after
it, and a rerun continues."""

import csv
import os
import signal
import time

import pytest

from conftest import spawn


def wait_for_a_running_job(out, proc, timeout=120.0) -> bool:
    t0 = time.time()
    while not list(out.glob("runs/2d/*/*/.lock")):
        if proc.poll() is not None or time.time() - t0 > timeout:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_to_a_benchmark_stops_it_and_records_no_failure(prior, tmp_path, workers):
    out = tmp_path / "gap"
    args = ("bench", "gap", "--dims", "2d", "--grid", "sds@30", "--prompts", tmp_path / "prompts.txt", "--seeds", 4,
            "--steps", 100000, "--prior", prior, "--workers", workers, "--out", out)
    (tmp_path / "prompts.txt").write_text("a cube\n")
    p = spawn(*args)
    assert wait_for_a_running_job(out, p), p.communicate()
    time.sleep(0.5)
    os.kill(p.pid, signal.SIGTERM)  # the main process only, as `kill PID` or `pkill -f` does
    try:  # 4 jobs on 2 workers: a queued job that started after the signal would run its 100000 steps
        _, err = p.communicate(timeout=120)
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the group: no worker outlives a failed test
        except ProcessLookupError:
            pass
    assert p.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    rows = list(csv.DictReader((out / "results.csv").open())) if (out / "results.csv").exists() else []
    assert not [r for r in rows if r["status"].startswith("failed")]
    if workers == 2:  # seeds 2 and 3 were queued behind the two running seeds: neither started
        assert not list(out.glob("runs/2d/*seed[23]/*")), sorted(out.glob("runs/2d/*/*"))
