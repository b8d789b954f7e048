"""RunDir on its own: the lock, the checks of a fresh folder, identity differences, temp files."""

import time
from dataclasses import dataclass, field

import pytest

from lods.errors import UserError
from lods.runs import RunBusy, RunDir, differences, identity_of


@dataclass
class Cfg:
    prompt: str = "a red cube"
    seed: int = 0
    steps: int = 10
    out: str = "x"
    nested: dict = field(default_factory=lambda: {"a": 1})


def test_second_open_is_busy_until_the_first_closes(tmp_path):
    first = RunDir(tmp_path / "run", "generate").open(config=Cfg())
    with pytest.raises(RunBusy, match="in use by another lods process"):
        RunDir(tmp_path / "run", "generate").open(config=Cfg())
    first.close()
    RunDir(tmp_path / "run", "generate").open(config=Cfg()).close()


def test_failed_first_run_removes_only_what_it_created(tmp_path):
    with pytest.raises(RuntimeError):
        with RunDir(tmp_path / "new", "generate").open(config=Cfg()) as run:
            run.record(Cfg())
            raise RuntimeError("boom")
    assert not (tmp_path / "new").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    with pytest.raises(RuntimeError):
        with RunDir(mine, "generate").open(config=Cfg()):
            raise RuntimeError("boom")
    assert mine.is_dir()


def test_fresh_open_refuses_foreign_files_and_finished_runs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(UserError, match="not a lods run"):
        RunDir(tmp_path / "a", "generate").open(config=Cfg())
    (tmp_path / "b" / "checkpoints").mkdir(parents=True)
    (tmp_path / "b" / "checkpoints" / "last.safetensors").write_bytes(b"x")
    with pytest.raises(UserError, match="already holds a run"):
        RunDir(tmp_path / "b", "generate").open(config=Cfg())


def test_temp_files_are_removed_on_open(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / ".last.safetensors.ab12cd34.tmp").write_bytes(b"x")
    (run / ".turntable.mp4.zz_9yy8x.mp4").write_bytes(b"x")
    (run / ".staging.0123abcd.tmp").mkdir()
    (run / ".keep-me").write_text("a user's dotfile")
    with pytest.raises(UserError, match="not a lods run"):  # a foreign file: refused, and kept
        RunDir(run, "generate").open(config=Cfg())
    assert sorted(p.name for p in run.rglob(".*")) == [".keep-me"]


def test_differences_ignore_steps_out_and_name_the_rest():
    a, b = Cfg(), Cfg(prompt="a blue cube", seed=3, steps=99, out="y", nested={"a": 2})
    diff = differences(identity_of(a)["config"], identity_of(b)["config"])
    assert [d.split(":")[0] for d in diff] == ["prompt", "seed", "nested.a"]
    assert identity_of(a)["config_digest"] == identity_of(Cfg(steps=5, out="z"))["config_digest"]


def test_a_repeated_signal_within_a_second_is_the_same_stop_and_a_later_one_stops_at_once(monkeypatch):
    import os
    import signal

    from lods.errors import Interrupted
    from lods.runs import StopSignals

    monkeypatch.setattr(StopSignals, "SAME_STOP_S", 0.3)
    with StopSignals() as signals:
        signals.deferred, signals.step = True, 7
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, then the benchmark's forwarded SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.requested == signal.SIGINT  # both wait for the step boundary's checkpoint
        time.sleep(0.4)
        with pytest.raises(Interrupted) as stop:  # a second stop, later: at once
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert stop.value.step == 7


def test_poll_sees_the_stop_file_once_it_exists(tmp_path, monkeypatch):
    import signal

    from lods import runs
    from lods.runs import StopSignals

    monkeypatch.setattr(runs, "_stop_file", None)
    monkeypatch.setattr(StopSignals, "STOP_FILE_EVERY_S", 0.0)
    stop = tmp_path / ".stop"
    with StopSignals() as signals:
        assert not signals.poll()  # no file watched
        runs.watch_stop_file(stop)
        assert not signals.poll() and not runs.stop_file_exists()
        stop.write_text("stop\n")
        assert signals.poll() and signals.requested == signal.SIGTERM
    runs.watch_stop_file(None)
    assert not runs.stop_file_exists()


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_stop_signal_raises_keyboard_interrupt_inside_and_the_old_handler_is_back_after(signame):
    import os
    import signal

    from lods.runs import stop_signals_raise_interrupt

    sig = getattr(signal, signame)
    seen = []
    old = signal.signal(sig, lambda s, f: seen.append(s))
    try:
        with pytest.raises(KeyboardInterrupt):
            with stop_signals_raise_interrupt():
                os.kill(os.getpid(), sig)
                time.sleep(1)  # the handler runs between bytecodes; it raises long before this ends
        os.kill(os.getpid(), sig)
        time.sleep(0.1)
        assert seen == [sig]
    finally:
        signal.signal(sig, old)
