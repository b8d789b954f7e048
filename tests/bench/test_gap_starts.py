"""`lods bench gap --start-colours`: seed k starts from colour k mod n (bench/gap_starts.py), on a tiny world prior."""

import csv
import json
from pathlib import Path

import pytest
import torch

from lods.bench.gap import COLUMNS, GapConfig, parse_grid, plan_jobs, run_gap
from lods.bench.gap_restore import restore
from lods.bench.gap_starts import recoloured_ball
from lods.errors import UserError
from lods.pipelines.presets import preset_config
from lods.scenes.gaussians import GaussianScene, sh_to_rgb
from lods.scenes.init_ply import scene_from_ply
from lods.scenes.ply import save_ply
from lods.world.shapes import COLORS

from .conftest import read

TINY_3D = dict(dims="3d", render_size=16, num_points=48,
               export={"mesh_resolution": 16, "turntable_frames": 2, "turntable_size": 16, "views_size": 16, "eval_views": 4})


def rgb(scene):
    return sh_to_rgb(scene.f_dc.detach()[:, None], None, 0)


def test_the_recoloured_ball_is_the_runs_ball_in_another_colour(tmp_path):
    cfg = preset_config("fast", "gs", "sds").scene_config()
    gray, red = GaussianScene(cfg, seed=3), recoloured_ball(cfg, 3, "red")
    assert torch.equal(gray.means, red.means) and torch.equal(gray.scales, red.scales)
    assert torch.allclose(rgb(red) - torch.tensor(COLORS["red"]), rgb(gray) - 0.5, atol=1e-5)  # the jitter is kept
    save_ply(red, tmp_path / "red.ply")
    loaded = scene_from_ply(tmp_path / "red.ply", cfg, seed=3)  # what init_ply gives the run
    assert torch.allclose(loaded.means, red.means, atol=1e-5) and torch.allclose(rgb(loaded), rgb(red), atol=1e-4)


def test_seed_k_starts_from_colour_k_mod_n(world_prior, tmp_path):
    gc = GapConfig(grid=parse_grid("sds@7.5"), prompts=["a cube"], seeds=3, steps=1, prior=world_prior,
                   out=str(tmp_path), start_colours="red, gray", **TINY_3D)
    gc.validate()
    jobs = plan_jobs(gc)
    assert [j["start"] for j in jobs] == ["red", "gray", "red"]
    # gray in 3D is the default run: its old folder, no start file; a colour gets its own folder and ply
    assert [Path(j["config"].out).parent.name for j in jobs] == \
        ["sds-s7.5-gs-seed0-start-red", "sds-s7.5-gs-seed1", "sds-s7.5-gs-seed2-start-red"]
    assert [j["config"].init_ply for j in jobs] == \
        [str(tmp_path / "starts" / "red-seed0.ply"), None, str(tmp_path / "starts" / "red-seed2.ply")]
    # without the option: the default start, named in the row
    default = plan_jobs(GapConfig(**{**gc.__dict__, "start_colours": []}))
    assert [j["start"] for j in default] == ["gray"] * 3 and all(j["config"].init_ply is None for j in default)
    # in 2D every named colour, gray included, is a start picture (the default start there is noise)
    jobs_2d = plan_jobs(GapConfig(**{**gc.__dict__, "dims": "2d", "start_colours": ["gray"], "seeds": 1}))
    assert jobs_2d[0]["config"].init == str(tmp_path / "starts" / "gray.png")
    assert Path(jobs_2d[0]["config"].out).parent.name == "sds-s7.5-seed0-start-gray"
    assert plan_jobs(GapConfig(**{**gc.__dict__, "dims": "2d", "seeds": 1, "start_colours": []}))[0]["start"] == "noise"


def test_bad_start_colours_fail_before_anything_is_written(world_prior, tmp_path):
    base = dict(grid=parse_grid("sds@7.5"), prompts=["a cube"], seeds=1, steps=1, prior=world_prior, out=str(tmp_path / "o"))
    with pytest.raises(UserError, match="unknown colour 'teal'"):
        run_gap(GapConfig(**base, start_colours="red,teal"))
    with pytest.raises(UserError, match="needs --backbones gs"):
        run_gap(GapConfig(**base, dims="3d", backbones=["gs", "nerf"], start_colours=["red"]))
    assert not (tmp_path / "o").exists()


def test_restoring_matches_the_start(world_prior, tmp_path):
    gc = GapConfig(grid=parse_grid("sds@7.5"), prompts=["a cube"], seeds=2, steps=1, prior=world_prior,
                   out=str(tmp_path / "new"), start_colours=["red", "gray"], **TINY_3D)
    gc.validate()
    jobs = plan_jobs(gc)
    rows = [{**{c: "" for c in COLUMNS}, "dims": "3d", "method": "sds@7.5", "backbone": "gs", "seed": seed,
             "prompt": "a cube", "steps": 1, "status": "ok", "psnr": 10.0} for seed in (0, 1)]
    with (tmp_path / "old.csv").open("w", newline="") as f:  # a csv from before the start column: gray starts
        w = csv.DictWriter(f, fieldnames=[c for c in COLUMNS if c != "start"])
        w.writeheader()
        w.writerows({k: v for k, v in r.items() if k != "start"} for r in rows)
    assert restore(jobs, [str(tmp_path / "old.csv")], "gap.json") == 1  # seed 1 (gray); not seed 0 (red)
    assert [(Path(j["config"].out) / "gap.json").exists() for j in jobs] == [False, True]
    with (tmp_path / "red.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows([{**rows[0], "start": "red"}, {**rows[0], "start": "blue"}])
    assert restore(jobs, [str(tmp_path / "red.csv")], "gap.json") == 1
    assert (Path(jobs[0]["config"].out) / "gap.json").exists()


def test_a_run_starts_from_its_colour(world_prior, tmp_path):
    """One step from the red ball: the result is still far more saturated than the gray start's; the row says where it
    started. (Best-of-set PSNR on the tiny 48-splat ball picks the same cube from either start: it reads the shape.)"""
    out = tmp_path / "gap"
    gc = GapConfig(grid=parse_grid("sds@7.5"), prompts=["a cube"], seeds=1, steps=1, prior=world_prior, out=str(out),
                   start_colours=["red"], **TINY_3D)
    run_gap(gc)
    (row,) = read(out / "results.csv")
    assert list(row) == COLUMNS and row["status"] == "ok" and row["start"] == "red"
    (gray,) = run_gap(GapConfig(**{**gc.__dict__, "start_colours": [], "out": str(tmp_path / "gray")}))["rows"]
    assert gray["start"] == "gray" and float(row["saturation"]) > float(gray["saturation"]) + 0.3
    config = (Path(row["run_dir"]) / "config.yaml").read_text()
    assert f"init_ply: {out / 'starts' / 'red-seed0.ply'}" in config
    assert "seed k starts from colour k mod 1 of red" in (out / "summary.md").read_text()
    assert [r["status"] for r in run_gap(gc)["rows"]] == ["done before"]
    # the 2D playground from the blue ball's picture
    gc2 = GapConfig(grid=parse_grid("sds@1"), prompts=["a cube"], seeds=1, steps=1, prior=world_prior,
                    out=str(tmp_path / "gap2d"), start_colours=["blue"])
    (row2,) = run_gap(gc2)["rows"]
    assert row2["start"] == "blue" and row2["status"] == "ok"
    assert json.loads((Path(row2["run_dir"]) / "gap.json").read_text())["settings"]["init"].endswith("blue.png")


def test_the_command_line_takes_start_colours(world_prior, tmp_path, monkeypatch, capsys):
    import sys

    from lods.cli import main

    (tmp_path / "prompts.txt").write_text("a cube\n")
    argv = ["lods", "bench", "gap", "--dims", "2d", "--grid", "sds@1", "--prompts", str(tmp_path / "prompts.txt"),
            "--seeds", "2", "--steps", "1", "--prior", world_prior, "--quiet"]
    monkeypatch.setattr(sys, "argv", argv + ["--out", str(tmp_path / "bad"), "--start-colours", "red,teal"])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "unknown colour 'teal'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "bad").exists()
    loud = [a for a in argv if a != "--quiet"]
    monkeypatch.setattr(sys, "argv", loud + ["--out", str(tmp_path / "ok"), "--start-colours", "red,blue"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code in (0, None)
    err = capsys.readouterr().err
    assert "sds@1 2d seed 0 from red “a cube”: ok" in err and "seed 1 from blue" in err
    assert [(r["seed"], r["start"]) for r in read(tmp_path / "ok" / "results.csv")] == [("0", "red"), ("1", "blue")]
    assert "--start-colours red,blue" in (tmp_path / "ok" / "summary.md").read_text()
