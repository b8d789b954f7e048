import json

import pytest
import torch
import yaml

from lods.errors import Diverged, UserError
from lods.guidance import GUIDANCES, GuidanceConfig
from lods.pipelines.distill2d import Distill2DConfig, run_distill2d, saturation
from lods.priors.prior import Prior
from lods.priors.tiny_sd import build_tiny_sd, build_tiny_world_prior

FILES = {"image.png", "metrics.json", "config.yaml", "loss.png"}


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    return build_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd", latent=True)


@pytest.fixture(scope="module")
def world_folder(tmp_path_factory):
    return build_tiny_world_prior(tmp_path_factory.mktemp("world") / "prior")


def leftovers(parent):
    return sorted(p.name for p in parent.iterdir())


@pytest.mark.parametrize("name", list(GUIDANCES))
def test_runs_every_guidance_on_tiny_sd(sd_folder, tmp_path, name):
    from PIL import Image

    out = tmp_path / "run"
    calls = []
    cfg = Distill2DConfig(prompt="a red cube", guidance=name, prior=str(sd_folder), steps=3, out=str(out), log_every=2)
    result = run_distill2d(cfg, progress=lambda step, total, logs: calls.append((step, total, dict(logs))))
    assert FILES <= {p.name for p in out.iterdir()}
    assert (out / "snapshots" / "step_00002.png").exists()
    assert leftovers(tmp_path) == ["run"]  # no temp folder left
    assert [c[:2] for c in calls] == [(1, 3), (2, 3), (3, 3)]
    assert "loss_distill" in calls[0][2]
    assert Image.open(out / "image.png").size == (32, 32)
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["step"] for h in metrics["history"]] == [0, 1, 2]
    assert ("loss_learned" in metrics["final"]) == (name in ("lods-embedding", "lods-lora", "vsd"))
    assert 0 <= metrics["saturation"] <= 1 and len(metrics["mean_rgb"]) == 3
    assert "prior_denoising_loss" not in metrics  # only for the embedded (world) prior
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["guidance"] == name and resolved["prior"] == str(sd_folder)
    scales = {"sds": 100.0, "csd": None, "vsd": 7.5, "ism": 7.5, "sdi": 8.5, "nfsd": 7.5, "asd": 7.5}
    assert resolved["guidance_scale"] == scales.get(name, 1000.0)
    assert result == {**metrics, "out": str(out)}
    assert metrics["final_loss"] == pytest.approx(sum(metrics["final"].values()))


def test_world_prior_particles_and_denoising_metric(world_folder, tmp_path):
    out = tmp_path / "run"
    cfg = Distill2DConfig(prompt="a red cube", guidance="lods-embedding", prior=str(world_folder), steps=2, batch=2,
                          out=str(out), guidance_scale=100.0, log_every=0)
    metrics = run_distill2d(cfg)
    assert metrics["prior_denoising_loss"] > 0
    assert metrics["guidance_scale"] == 100.0
    from PIL import Image

    assert Image.open(out / "image.png").size == (64, 32)  # two particles side by side
    assert not (out / "snapshots").exists()


def test_deterministic_given_seed(world_folder, tmp_path):
    prior = Prior.load(str(world_folder))
    runs = []
    for i in range(2):
        cfg = Distill2DConfig(prompt="a red cube", guidance="sds", prior=str(world_folder), steps=2, out=str(tmp_path / f"r{i}"), seed=3)
        runs.append(run_distill2d(cfg, prior=prior))
    assert runs[0]["history"] == runs[1]["history"] and runs[0]["mean_rgb"] == runs[1]["mean_rgb"]
    other = run_distill2d(Distill2DConfig(prompt="a red cube", guidance="sds", prior=str(world_folder), steps=2,
                                          out=str(tmp_path / "r2"), seed=4), prior=prior)
    assert other["mean_rgb"] != runs[0]["mean_rgb"]


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(steps=0), "steps must be positive"),
        (dict(guidance_scale=0.0), "must be positive"),
        (dict(guidance_scale=-1.0), "must be positive"),
        (dict(prompt=""), "empty"),
        (dict(guidance="dreamtime"), "unknown guidance"),
        (dict(prompt="a crimson cube"), "crimson"),
        (dict(prior="/nonexistent/prior"), "not found"),
        (dict(guidance_config=GuidanceConfig(min_step_percent=0.9, max_step_percent=0.1)), "min_step_percent"),
    ],
)
def test_bad_inputs_write_nothing(world_folder, tmp_path, changes, match):
    out = tmp_path / "run"
    cfg = Distill2DConfig(prompt="a red cube", guidance="sds", prior=str(world_folder), steps=2, out=str(out))
    for key, value in changes.items():
        setattr(cfg, key, value)
    with pytest.raises(UserError, match=match):
        run_distill2d(cfg)
    assert leftovers(tmp_path) == []


def test_nan_loss_keeps_previous_result(world_folder, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "image.png").write_text("previous result")
    prior = Prior.load(str(world_folder))
    prior.predict_noise = lambda z_t, *a, **k: torch.full_like(z_t, float("nan"))
    cfg = Distill2DConfig(prompt="a red cube", guidance="lods-embedding", steps=3, out=str(out))
    with pytest.raises(Diverged, match="loss became nan at step 0"):
        run_distill2d(cfg, prior=prior)
    assert leftovers(tmp_path) == ["run"] and (out / "image.png").read_text() == "previous result"


def test_finished_run_replaces_previous_distill2d_result(world_folder, tmp_path):
    out = tmp_path / "run"
    cfg = Distill2DConfig(prompt="a red cube", guidance="csd", prior=str(world_folder), steps=1, out=str(out))
    run_distill2d(cfg)
    first = (out / "metrics.json").read_text()
    cfg.seed = 1
    run_distill2d(cfg)
    assert FILES <= {p.name for p in out.iterdir()} and (out / "metrics.json").read_text() != first
    assert leftovers(tmp_path) == ["run"]


def test_a_folder_it_did_not_write_is_never_deleted(world_folder, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    with pytest.raises(UserError, match="not a distill2d result"):
        run_distill2d(Distill2DConfig(prompt="a red cube", guidance="csd", prior=str(world_folder), steps=1, out=str(out)))
    assert sorted(p.name for p in out.iterdir()) == ["stale.txt"]


def test_saturation():
    grey = torch.full((1, 3, 2, 2), 0.5)
    assert float(saturation(grey)) == 0.0
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    assert float(saturation(red)) == 1.0
    assert float(saturation(torch.zeros(1, 3, 2, 2))) == 0.0
