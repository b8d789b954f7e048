"""Soak test (not in CI): N random kill -9s of one run, each followed by --resume, must end byte-identical to an
uninterrupted run. Uses the tests' tiny presets (tests/reliability/tiny_cli.py) and a tiny world prior.

    python scripts/soak_resume.py --kills 20 --steps 40
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY_CLI = ROOT / "tests" / "reliability" / "tiny_cli.py"
OUTPUTS = ("checkpoints/last.safetensors", "model.ply", "mesh.glb", "views.png", "turntable.mp4")


def spawn(args) -> subprocess.Popen:
    env = {**os.environ, "LODS_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, str(TINY_CLI), *map(str, args)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_lock(out: Path, p: subprocess.Popen) -> float | None:
    """Seconds until the run holds its folder's lock (None: it ended first)."""
    t0 = time.time()
    while not (out / ".lock").exists():
        if p.poll() is not None:
            return None
        time.sleep(0.005)
    return time.time() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    ap.add_argument("--jitter", type=float, default=0.5, help="seconds of random delay after the chosen step")
    ap.add_argument("--prior", default=None, help="a world prior folder (default: a freshly built tiny one)")
    ap.add_argument("--work", default=None, help="working folder (default: a temp folder)")
    a = ap.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="lods-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    prior = a.prior
    if prior is None:
        sys.path.insert(0, str(ROOT / "src"))
        from lods.priors.tiny_sd import build_tiny_world_prior

        prior = str(build_tiny_world_prior(work / "prior"))
    base = ["generate", "a red cube", "--prior", prior, "--steps", a.steps, "--quiet"]

    ref = work / "reference"
    p = spawn(base + ["--out", ref])
    lock_at = wait_lock(ref, p)
    t0 = time.time()
    while not (ref / "checkpoints").exists() and p.poll() is None:
        time.sleep(0.005)
    loop_at = time.time() - t0  # the step loop starts about here (the first checkpoint is 2 steps in)
    _, err = p.communicate()
    if p.returncode != 0:
        print(err, file=sys.stderr)
        return 1
    window = time.time() - t0  # the run's life after it took the lock
    rng = random.Random(a.seed)
    out = work / "soak"
    kills, attempts, landed, finished_early = 0, 0, [], False
    while kills < a.kills:
        attempts += 1
        p = spawn(base + ["--out", out] + (["--resume"] if out.exists() else []))
        if wait_lock(out, p) is None:  # ended before taking the lock (e.g. it had already finished)
            break
        # a moment chosen by progress (robust to a loaded machine): a random step of this attempt's share of the
        # run (the last kill: after the final checkpoint, i.e. in the export), then a random fraction of a second
        done = _progress(out)
        left = a.kills - kills
        target = a.steps if left == 1 else done + rng.randint(0, max(1, (a.steps - done) // (left + 1)))
        while _progress(out) < target and p.poll() is None:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, a.jitter))
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            kills += 1
            ck = out / "checkpoints" / "last.safetensors"
            landed.append(_step(ck) if ck.exists() else None)
        else:
            _, err = p.communicate()
            if p.returncode != 0:
                print(f"attempt {attempts}: exit {p.returncode}: {err.strip()}", file=sys.stderr)
                return 1
            finished_early = True  # the run ended before this kill: fewer kills than asked
            break
    p = spawn(base + ["--out", out, "--resume"])
    _, err = p.communicate()
    differ = [n for n in OUTPUTS if (ref / n).read_bytes() != (out / n).read_bytes()] if p.returncode == 0 else ["-"]
    report = {"kills": kills, "attempts": attempts, "finished_before_all_kills": finished_early, "steps": a.steps, "lock_after_s": round(lock_at or 0, 2),
              "run_window_s": round(window, 2), "loop_after_s": round(loop_at, 2), "checkpoint_step_at_each_kill": landed,
              "final_exit": p.returncode, "outputs_differing": differ, "identical": not differ}
    print(json.dumps(report))
    return 0 if not differ else 1


def _progress(out: Path) -> int:
    """The step of the run's last checkpoint, from run.json (0 before the first)."""
    try:
        return int(json.loads((out / "run.json").read_text()).get("progress", {}).get("step", 0))
    except (OSError, ValueError):
        return 0


def _step(path: Path):
    sys.path.insert(0, str(ROOT / "src"))
    from lods.errors import UserError
    from lods.utils.io import load_checkpoint

    try:
        return load_checkpoint(path)[1]["step"]
    except UserError:
        return "unreadable"


if __name__ == "__main__":
    sys.exit(main())
