"""scripts/probe_init_colour.py: the same seeds run from several start colours (the start ball: tests/bench/test_gap_starts.py)."""

from .conftest import load_script


def test_2d_runs_start_from_the_coloured_picture_and_are_scored(tmp_path, tiny_prior_folder):
    probe = load_script("probe_init_colour")
    prior = tiny_prior_folder
    rows = probe.main(["--dims", "2d", "--prior", prior, "--prompts", "a cube", "--grid", "sds@1", "--colours",
                       "gray,blue", "--steps", "1", "--out", str(tmp_path / "probe")])
    assert [(r["start"], r["seed"], r["status"]) for r in rows] == [("gray", 0, "ok"), ("blue", 0, "ok")]
    assert all(r["nearest_completion"].endswith(" cube") for r in rows)
    # one step at s = 1 barely moves the picture: the blue start's result is far more saturated than the gray one's
    assert float(rows[1]["saturation"]) > float(rows[0]["saturation"]) + 0.3
    assert (tmp_path / "probe" / "blue" / "starts" / "blue.png").exists()
    lines = (tmp_path / "probe" / "results.csv").read_text().splitlines()
    assert lines[0].startswith("dims,method") and ",blue," in lines[2]
