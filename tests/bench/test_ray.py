"""The Ray backend on a local Ray started here (2 CPUs): the same results.csv rows as the local backend, a worker
killed mid-suite (the suite completes, every result exactly once), `generate --prompts` on Ray, and reruns that
send nothing to the cluster. Tiny world prior, seeded CPU runs of a few steps at 16²."""

import csv
import os
import signal
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the Ray backend needs the ray extra: pip install -e '.[test,ray]'")

from lods.bench.batch import BatchConfig, run_batch  # noqa: E402
from lods.bench.config import BenchConfig  # noqa: E402
from lods.bench.quality import run_bench  # noqa: E402
from lods.pipelines.presets import preset_config  # noqa: E402
from lods.pipelines.run_config import ExportConfig
from lods.priors.tiny_sd import build_tiny_world_prior  # noqa: E402
from lods.render.cameras import CameraSamplerConfig  # noqa: E402

TINY_EXPORT = {"mesh_resolution": 16, "turntable_frames": 2, "turntable_size": 16, "views_size": 16, "eval_views": 4}
TIMING = {"seconds", "seconds_per_step", "wall_seconds", "run_dir", "status", "resumed_from_step"}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def world_prior(tmp_path_factory):
    return str(build_tiny_world_prior(tmp_path_factory.mktemp("world") / "prior"))


def suite(prior, out, **kw):
    base = dict(prior=prior, methods=["sds", "lods-embedding"], seeds=1, prompts_per_category=1, categories=["single", "multi"],
                steps=6, render_size=16, num_points=48, export=dict(TINY_EXPORT), out=str(out), view_grid_prompts=0)
    base.update(kw)
    return BenchConfig(**base)


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def comparable(rows):
    return sorted(tuple((k, v) for k, v in r.items() if k not in TIMING) for r in rows)


@pytest.fixture(scope="module")
def local_rows(world_prior, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "bench"
    run_bench(suite(world_prior, out))
    return read(out / "results.csv")


def _busy_workers() -> list[int]:
    """Ray worker processes of this test (descendants of this process) that are running a task."""
    me, found = os.getpid(), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            title = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0].decode()
        except OSError:
            continue
        if title != "ray::_task":
            continue
        p = int(pid)
        while p > 1:
            try:
                p = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                break
            if p == me:
                found.append(int(pid))
                break
    return found


def test_ray_gives_the_rows_of_the_local_backend(world_prior, local_rows, tmp_path, monkeypatch):
    out = tmp_path / "ray"
    result = run_bench(suite(world_prior, out, backend="ray"))
    rows = read(out / "results.csv")
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    assert comparable(rows) == comparable(local_rows)
    assert all(Path(r["run_dir"]).is_relative_to(out) for r in result["rows"])

    submitted = []  # a rerun reads every result and sends nothing to the cluster
    import lods.bench.ray as rb

    real = rb.run_on_ray
    monkeypatch.setattr(rb, "run_on_ray", lambda fn, items, **kw: submitted.extend(items) or real(fn, items, **kw))
    again = run_bench(suite(world_prior, out, backend="ray"))
    assert submitted == [] and [r["status"] for r in again["rows"]] == ["done before"] * 4


def test_a_worker_killed_mid_suite(world_prior, local_rows, tmp_path):
    out = tmp_path / "killed"
    killed: list[int] = []

    def kill_one():  # once a run is under way, SIGKILL the worker process running a task
        deadline = time.time() + 240
        while time.time() < deadline and not killed:
            started = [p for p in out.glob("runs/*/*") if (p / "config.yaml").exists() and not (p / "metrics.json").exists()]
            busy = _busy_workers() if started else []
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    run_bench(suite(world_prior, out, backend="ray"))
    killer.join(timeout=5)
    assert killed, "no worker was killed"
    rows = read(out / "results.csv")
    keys = [(r["method"], r["prompt"]) for r in rows]
    assert len(rows) == 4 and len(set(keys)) == 4  # every result exactly once
    assert not any(r["status"].startswith("failed") for r in rows), [r["status"] for r in rows]
    assert comparable(rows) == comparable(local_rows)  # the retried run reaches the same result


def test_generate_prompts_on_ray(world_prior, tmp_path):
    t = preset_config("fast", "gs", "sds")
    t.prior, t.steps, t.render_size, t.checkpoint_every = world_prior, 2, 16, 2
    t.cameras = CameraSamplerConfig(views_per_step=2)
    t.gaussians = {"num_points": 48}
    t.export = ExportConfig(**TINY_EXPORT)
    prompts = ["a red cube", "a red unicorn", "a blue sphere"]
    local = run_batch(BatchConfig(t, prompts, out=str(tmp_path / "local")))
    remote = run_batch(BatchConfig(t, prompts, out=str(tmp_path / "ray"), backend="ray"))
    assert [r["status"].split(":")[0] for r in remote["rows"]] == ["ok", "failed", "ok"]
    assert comparable(read(remote["csv_path"])) == comparable(read(local["csv_path"]))
    again = run_batch(BatchConfig(t, prompts, out=str(tmp_path / "ray"), backend="ray"))
    assert [r["status"].split(":")[0] for r in again["rows"]] == ["done before", "failed", "done before"]
