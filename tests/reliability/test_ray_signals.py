"""A stop signal to `lods generate --prompts ... --backend ray` stops it as it stops the local worker pool: the
running runs checkpoint at a step boundary and release their folders, no queued prompt starts, and the command
exits 130 with one line."""

import os
import signal
import time

import pytest

from conftest import spawn

pytest.importorskip("ray", reason="the Ray backend needs the ray extra: pip install -e '.[test,ray]'")


def runs_in_step_loop(out, n, proc, timeout=180.0) -> bool:
    """Wait until `n` run folders under `out` hold a checkpoint (their runs are in the step loop)."""
    t0 = time.time()
    while len(list(out.glob("*/checkpoints/last.safetensors"))) < n:
        if proc.poll() is not None or time.time() - t0 > timeout:
            return False
        time.sleep(0.1)
    return True


def ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# SIGINT: to a process started as a shell starts a background job, with SIGINT ignored (the CLI must still stop)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_a_ray_batch_checkpoints_the_running_runs_and_starts_no_queued_one(prior, tmp_path, sig):
    from lods.utils.io import load_checkpoint

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red cube\na blue sphere\na green cone\n")  # 3 prompts on 2 CPUs: one is queued
    out = tmp_path / "batch"
    p = spawn("generate", "--prompts", prompts, "--backend", "ray", "--prior", prior, "--steps", 100000,
              "--out", out, "--quiet", preexec_fn=ignore_sigint if sig == signal.SIGINT else None)
    try:
        assert runs_in_step_loop(out, 2, p), p.communicate()
        os.kill(p.pid, sig)  # the main process only, as `kill PID` does
        _, err = p.communicate(timeout=240)
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # no Ray process outlives a failed test
        except ProcessLookupError:
            pass
    lods_lines = [line for line in err.splitlines() if line.startswith("lods:")]
    assert p.returncode == 130, err
    assert len(lods_lines) == 1 and "interrupted" in lods_lines[0] and "Traceback" not in err, err
    started = [d for d in out.iterdir() if d.is_dir() and (d / "config.yaml").exists()]
    assert len(started) == 2, sorted(out.iterdir())  # the queued prompt never started
    assert not list(out.glob(".stop-*"))  # the stop file is removed
    for run in started:
        assert not (run / ".lock").exists(), run  # released by the run itself, not left by a killed worker
        assert not (run / "metrics.json").exists()
        assert load_checkpoint(run / "checkpoints" / "last.safetensors")[1]["step"] > 0


def test_a_ray_task_does_not_start_its_run_once_the_stop_file_exists(tmp_path, monkeypatch):
    import torch

    from lods.bench import ray as ray_backend
    from lods.errors import Interrupted
    from lods.runs import stop_file_exists

    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # _task sets the worker's; keep this process's
    started = []
    stop = tmp_path / ".stop-1"
    assert ray_backend._task(started.append, "first", 1, str(stop)) is None and started == ["first"]
    stop.write_text("stop\n")
    with pytest.raises(Interrupted):
        ray_backend._task(started.append, "second", 1, str(stop))
    assert started == ["first"] and not stop_file_exists()  # the worker process watches no file between tasks
