"""scripts/probe_init_colour.py: benchmark runs started from the gray ball recoloured."""

import torch

from lods.pipelines.presets import preset_config
from lods.scenes.gaussians import GaussianScene, sh_to_rgb
from lods.scenes.init_ply import scene_from_ply
from lods.scenes.ply import save_ply
from lods.world.shapes import COLORS

from .conftest import load_script


def test_the_recoloured_ball_is_the_runs_ball_in_another_colour(tmp_path):
    probe = load_script("probe_init_colour")
    cfg = preset_config("fast", "gs", "sds").scene_config()
    gray, red = GaussianScene(cfg, seed=3), probe.recoloured_ball(cfg, 3, "red")
    assert torch.equal(gray.means, red.means) and torch.equal(gray.scales, red.scales)
    rgb = lambda s: sh_to_rgb(s.f_dc.detach()[:, None], None, 0)  # noqa: E731
    assert torch.allclose(rgb(red) - torch.tensor(COLORS["red"]), rgb(gray) - 0.5, atol=1e-5)  # the jitter is kept
    save_ply(red, tmp_path / "red.ply")
    loaded = scene_from_ply(tmp_path / "red.ply", cfg, seed=3)  # what --init-ply gives the run
    assert torch.allclose(loaded.means, red.means, atol=1e-5) and torch.allclose(rgb(loaded), rgb(red), atol=1e-4)


def test_2d_runs_start_from_the_coloured_picture_and_are_scored(tmp_path, tiny_prior_folder):
    probe = load_script("probe_init_colour")
    prior = tiny_prior_folder
    rows = probe.main(["--dims", "2d", "--prior", prior, "--prompts", "a cube", "--grid", "sds@1", "--colours",
                       "gray,blue", "--steps", "1", "--out", str(tmp_path / "probe")])
    assert [(r["start"], r["status"]) for r in rows] == [("gray", "ok"), ("blue", "ok")]
    assert all(r["nearest_completion"].endswith(" cube") for r in rows)
    # one step at s = 1 barely moves the picture: the blue start's result is far more saturated than the gray one's
    assert float(rows[1]["saturation"]) > float(rows[0]["saturation"]) + 0.3
    assert (tmp_path / "probe" / "starts" / "blue.png").exists()
    assert (tmp_path / "probe" / "results.csv").read_text().startswith("start,dims,method")
