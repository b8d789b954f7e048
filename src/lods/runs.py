"""The run folder as one object: every command that writes a folder goes through `RunDir`.

A RunDir
- refuses a path that is a file, and never deletes a folder it did not create;
- takes a lock (`OUT/.lock`, fcntl.flock, holding the pid): a second process on the folder gets a clear error while
  the first lives; the kernel drops the lock of a dead process, so a stale lock is simply taken over;
- removes the temp files a killed write left, when it opens;
- records the run's identity in `OUT/run.json` (task, prompt, method, backbone, seed, prior, a digest of the config)
  and refuses a resume whose config contradicts it, listing the differences (`steps`, `out`, `device` and `export` may change);
- treats a folder with no checkpoint and no finished outputs as free to start over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path

from .errors import Interrupted, UserError
from .utils.io import atomic_write_json, clean_temp_files, is_temp_name

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
CHECKPOINT = Path("checkpoints") / "last.safetensors"
# config fields a resume may change: the folder itself, the length of the run, the hardware, the exports
MAY_CHANGE = ("out", "steps", "device", "export")
# what a run writes before its first checkpoint: a folder holding only these is free to start over
START_FILES = {"config.yaml", RUN_FILE, "reference.png", "checkpoints", LOCK_FILE}
FINISHED_FILES = ("metrics.json",)
# config keys renamed since a run may have recorded them (old name -> new name): a resume reads them as the new ones
RENAMED_KEYS = {"lambdas.sds": "lambdas.distill", "lambdas.prior": "lambdas.learned"}


class RunBusy(UserError):
    """Another live process holds the folder's lock."""


def flatten(obj, prefix: str = "") -> dict:
    """A dataclass or dict as {"a.b": value}; tuples become lists (as in YAML/JSON)."""
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    flat = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            flat.update(flatten(v, key + "."))
        else:
            flat[key] = list(v) if isinstance(v, tuple) else v
    return flat


def identity_of(config) -> dict:
    """The fields that make a run what it is, and a digest of the whole config (less MAY_CHANGE)."""
    flat = {k: v for k, v in flatten(config).items() if k.split(".")[0] not in MAY_CHANGE}
    digest = hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:16]
    ident = {k: flat.get(k) for k in ("task", "prompt", "guidance", "backbone", "seed", "prior", "image")
             if k in flat}
    return {"identity": ident, "config_digest": digest, "config": flat}


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def differences(recorded: dict, current: dict, added_defaults: dict | None = None) -> list[str]:
    """`key: recorded -> current` for every field that differs (fields only one side has included), except a
    field the recording lacks whose current value is its default in `added_defaults`: a setting added since the
    run was recorded, left as it was, changes nothing."""
    added_defaults = added_defaults or {}
    out = []
    for k in sorted(set(recorded) | set(current), key=lambda k: (k.count("."), k)):
        a, b = recorded.get(k, "<unset>"), current.get(k, "<unset>")
        if k not in recorded and k in added_defaults and _same(b, added_defaults[k]):
            continue
        if not _same(a, b):
            out.append(f"{k}: {a!r} -> {b!r}")
    return out


def config_defaults(config) -> dict:
    """The flattened fields of a default instance of `config`'s class ({} where it has no default instance)."""
    try:
        return identity_of(type(config)())["config"]
    except TypeError:
        return {}


class RunDir:
    """A run folder, locked for the lifetime of the `with` block (see the module docstring)."""

    def __init__(self, path: str | Path, task: str):
        self.path = Path(path)
        self.task = task
        self.created = False
        self._lock_fd: int | None = None
        self._replaces: frozenset = frozenset()

    # ------------------------------------------------------------------ paths
    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def run_file(self) -> Path:
        return self.path / RUN_FILE

    def has_checkpoint(self) -> bool:
        return self.checkpoint.is_file()

    def recorded(self) -> dict | None:
        """run.json, or None when there is none (a folder of an older version, or not a run)."""
        if not self.run_file.exists():
            return None
        try:
            data = json.loads(self.run_file.read_text())
        except (OSError, ValueError):
            raise UserError(f"{self.run_file} is damaged (not JSON); this folder cannot be resumed") from None
        if not isinstance(data, dict):
            raise UserError(f"{self.run_file} is damaged (not a JSON object)")
        return data

    # ------------------------------------------------------------------ opening
    def open(self, resume: bool = False, config=None, recorded_config=None, replaces: frozenset = frozenset()) -> "RunDir":
        """Create (if needed) and lock the folder, clean temp files, then check it can take this run.

        `config` is the run's resolved config (its identity is recorded / checked); `recorded_config(path)` returns
        the config of a folder that has no run.json (an older version's), or None. `replaces`: the outputs of an
        earlier run of the same task that a new one may replace (distill2d has no resume)."""
        self._replaces = replaces
        self._check_path(resume)
        try:
            self._lock()
            clean_temp_files(self.path)
            if resume:
                self._check_resume(config, recorded_config)
            else:
                self._check_fresh()
        except BaseException:
            self.close(failed=True)
            raise
        return self

    def open_existing(self) -> "RunDir":
        """Lock an existing run folder to read or amend it (`lods eval`)."""
        if not self.path.is_dir():
            raise UserError(f"no run folder at {self.path}")
        self._lock()
        return self

    def _check_path(self, resume: bool) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path} is a file, not a folder; choose another --out")
        if resume and not self.path.is_dir():
            raise UserError(f"--resume: there is no run folder at {self.path}")
        if not self.path.exists():
            try:
                self.path.mkdir(parents=True)
            except FileExistsError:  # created meanwhile by another process: the lock decides
                pass
            except NotADirectoryError:
                raise UserError(f"--out {self.path}: a parent of it is a file") from None
            else:
                self.created = True

    def _lock(self) -> None:
        lock = self.path / LOCK_FILE
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise RunBusy(f"{self.path} is in use by another lods process (pid {pid}); wait for it to end, "
                              "or choose another --out") from None
            try:  # the previous holder may have unlinked the file between our open and flock: lock the new one
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._lock_fd = fd
                try:  # the pid is for the message of a second process; a full disk must not stop the run here
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()}\n".encode())
                except OSError:
                    pass
                return
            os.close(fd)

    def contents(self) -> set[str]:
        return {p.name for p in self.path.iterdir() if not is_temp_name(p.name)} if self.path.is_dir() else set()

    def _check_fresh(self) -> None:
        names = self.contents() - {LOCK_FILE}
        if not names:
            return
        if self._replaces and names <= self._replaces | {RUN_FILE} and self._recorded_task() in (self.task, None):
            return  # an earlier result of this same command
        if self._replaces:  # a command without --resume (distill2d): never over another command's folder
            raise UserError(f"{self.path} holds files that are not a {self.task} result ({', '.join(sorted(names)[:5])}); "
                            "choose another --out")
        if self.has_checkpoint() or any(n in names for n in FINISHED_FILES):
            raise UserError(f"{self.path} already holds a run{self._progress_note()}; pass --resume to continue it, "
                            "or choose another --out")
        ckpt_dir = self.path / "checkpoints"
        foreign = names - START_FILES
        if foreign or (ckpt_dir.is_dir() and any(ckpt_dir.iterdir())):
            shown = ", ".join(sorted(foreign)[:5]) or "checkpoints/"
            raise UserError(f"{self.path} holds files that are not a lods run ({shown}); choose another --out")
        # a run stopped before its first checkpoint: free to start over (its files are rewritten)

    def _recorded_task(self):
        try:
            return (self.recorded() or {}).get("task")
        except UserError:
            return "?"

    def _progress_note(self) -> str:
        try:
            rec = self.recorded() or {}
        except UserError:
            return ""
        step, steps = rec.get("progress", {}).get("step"), rec.get("steps")
        return f" (step {step} of {steps})" if step is not None and steps else ""

    def _check_resume(self, config, recorded_config) -> None:
        rec = self.recorded()
        if rec is not None:
            if rec.get("task") != self.task:
                raise UserError(f"{self.path} holds a {rec.get('task')} run, not a {self.task} one")
            recorded_flat = {RENAMED_KEYS.get(k, k): v for k, v in rec.get("config", {}).items()}
        else:
            old = recorded_config(self.path) if recorded_config is not None else None
            if old is None:
                raise UserError(f"--resume: {self.path} is not a run folder (no {RUN_FILE} or config.yaml)")
            recorded_flat = identity_of(old)["config"]
        if config is not None:
            diff = differences(recorded_flat, identity_of(config)["config"], config_defaults(config))
            if diff:
                shown = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
                raise UserError(f"--resume: the flags contradict the run in {self.path}: {shown} "
                                "(only --steps may change; start a new run with another --out)")

    # ------------------------------------------------------------------ recording
    def record(self, config, progress: dict | None = None) -> None:
        """Write run.json: task, identity, config digest and config (less MAY_CHANGE), progress."""
        data = {"task": self.task, **identity_of(config), "steps": getattr(config, "steps", None)}
        old = None
        try:
            old = self.recorded()
        except UserError:
            pass
        data["progress"] = progress if progress is not None else (old or {}).get("progress", {"step": 0, "seconds": 0.0})
        atomic_write_json(self.run_file, data)

    def progress(self) -> dict:
        try:
            return (self.recorded() or {}).get("progress", {}) or {}
        except UserError:
            return {}

    # ------------------------------------------------------------------ closing
    def close(self, failed: bool = False) -> None:
        """Release the lock; after a failure, remove the folder again if this process created it and no
        checkpoint or output was written (only the files a run writes first; anything else keeps it). Nothing is
        removed unless this process held the lock (a process that lost the race must not touch the winner's files)."""
        held = self._lock_fd is not None
        if failed and held and self.created and not self.has_checkpoint():
            for name in START_FILES - {"checkpoints", LOCK_FILE}:
                (self.path / name).unlink(missing_ok=True)
            clean_temp_files(self.path)
            try:
                (self.path / "checkpoints").rmdir()
            except OSError:
                pass
        if held:
            (self.path / LOCK_FILE).unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None
            if failed and self.created:
                try:
                    self.path.rmdir()  # only if empty
                except OSError:
                    pass

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)


_stop_file: Path | None = None  # see watch_stop_file


def watch_stop_file(path: str | os.PathLike | None) -> None:
    """Make the runs of this process stop, as at a signal, once `path` exists (None: no file). The Ray backend
    sets it in its workers: a file on the shared output folder reaches a run on any node."""
    global _stop_file
    _stop_file = Path(path) if path else None


def stop_file_exists() -> bool:
    return _stop_file is not None and _stop_file.exists()


class StopSignals:
    """SIGINT / SIGTERM during a run. While `deferred` (inside the step loop) a signal only sets `requested`, and
    the loop checkpoints and raises Interrupted at the next step boundary; otherwise, or on a second signal, the
    handler raises Interrupted at once (`step`: the last checkpointed step, or None). A repeat within
    `SAME_STOP_S` of the first is the same stop: Ctrl-C reaches a benchmark's workers and its main process, which
    forwards it to them. `poll()`, at each step boundary, also looks for the stop file (`watch_stop_file`)."""

    SAME_STOP_S = 1.0
    STOP_FILE_EVERY_S = 1.0  # how often poll() looks for the stop file (a stat on shared storage)

    def __init__(self, message: str | None = None):
        self.message = message  # what Interrupted says when no checkpoint was written
        self.requested: int | None = None
        self.deferred = False
        self.step: int | None = None
        self._first_at = 0.0
        self._looked_at: float | None = None
        self._old: dict = {}

    def poll(self) -> bool:
        """Whether the run should stop now: a signal came, or the stop file appeared."""
        if self.requested is None and _stop_file is not None:
            now = time.monotonic()
            if self._looked_at is None or now - self._looked_at >= self.STOP_FILE_EVERY_S:
                self._looked_at = now
                if stop_file_exists():
                    self.requested, self._first_at = int(signal.SIGTERM), now
        return self.requested is not None

    def _handle(self, signum, frame):
        if self.deferred and self.requested is None:
            self.requested, self._first_at = signum, time.monotonic()
            return
        if self.deferred and time.monotonic() - self._first_at < self.SAME_STOP_S:
            return
        raise Interrupted(self.step, None if self.step is not None else self.message)

    def __enter__(self) -> "StopSignals":
        self._old = _install_stop_handlers(self._handle)
        return self

    def __exit__(self, *exc) -> None:
        _restore_handlers(self._old)
        self._old = {}


@contextlib.contextmanager
def stop_signals_raise_interrupt():
    """Inside: SIGINT and SIGTERM raise KeyboardInterrupt in the main thread (a pool's or Ray driver's stop); the
    old handlers come back after. SIGINT too, because a shell starts a background job with it ignored, and
    Ctrl-C or `kill -INT` must still stop it; SIGTERM in place of Ray's own handler, which calls sys.exit."""
    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt

    old = _install_stop_handlers(raise_interrupt)
    try:
        yield
    finally:
        _restore_handlers(old)


def _install_stop_handlers(handler) -> dict:
    """`handler` for SIGINT and SIGTERM, in the main thread only (elsewhere Python refuses); the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_handlers(old: dict) -> None:
    for sig, handler in old.items():
        signal.signal(sig, handler)


class Stopwatch:
    """Seconds spent on a run, across resumes: the recorded seconds at the checkpoint plus this process's."""

    def __init__(self, before: float = 0.0):
        self.before = float(before)
        self.t0 = time.time()

    def total(self) -> float:
        return self.before + (time.time() - self.t0)
