from lods.utils.progress import progress_bar


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
