from lods.utils.progress import _line_logger, progress_bar


def test_plain_lines_when_stderr_is_not_a_terminal(capsys):
    with progress_bar("train", total=10) as update:
        for step in range(1, 11):
            update(step, 10, {"loss": 0.5})
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("train 1/10") and "loss=0.5" in lines[0]
    assert lines[-1].startswith("train 10/10")
    assert len(lines) == 2  # throttled: the first step and the last


def test_disabled_prints_nothing(capsys):
    with progress_bar("train", total=3, enabled=False) as update:
        update(3, 3, {"loss": 1.0})
    assert capsys.readouterr().err == ""


def test_a_resumed_run_counts_only_this_sessions_steps(capsys):
    now = [0.0]
    update = _line_logger("run", every_s=0.0, clock=lambda: now[0])
    update(101, 200)  # the first step of a run resumed at step 100
    now[0] = 10.0
    update(111, 200)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "run 101/200 -- it/s"
    assert lines[1] == "run 111/200 1.00 it/s eta 89s"  # 10 steps in 10 s, not 111
