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


def test_init_starts_exactly_where_a_run_ended_or_from_a_picture(world_folder, tmp_path):
    from safetensors.torch import load_file

    from lods.pipelines.distill2d import initial_image

    prior = Prior.load(str(world_folder))
    first = tmp_path / "first"
    run_distill2d(Distill2DConfig(prompt="a red cube", guidance="sds", prior=str(world_folder), steps=2, out=str(first)), prior=prior)
    ended = load_file(str(first / "image.safetensors"))["image"]
    assert ended.shape == (1, prior.latent_channels, prior.latent_size, prior.latent_size)
    # a run folder and its file give the exact tensor; one image serves every particle
    assert torch.equal(initial_image(str(first), prior, (2, *ended.shape[1:])), ended.expand(2, -1, -1, -1))
    assert torch.equal(initial_image(str(first / "image.safetensors"), prior, tuple(ended.shape)), ended)
    # a continued run starts there: with a vanishing learning rate it ends there too, unlike a run from noise
    cont = run_distill2d(Distill2DConfig(prompt="a red cube", guidance="sds", prior=str(world_folder), steps=1, lr=1e-12,
                                         init=str(first), out=str(tmp_path / "cont")), prior=prior)
    assert torch.allclose(load_file(str(tmp_path / "cont" / "image.safetensors"))["image"], ended, atol=1e-9)
    assert yaml.safe_load((tmp_path / "cont" / "config.yaml").read_text())["init"] == str(first)
    fresh = run_distill2d(Distill2DConfig(prompt="a red cube", guidance="sds", prior=str(world_folder), steps=1, lr=1e-12,
                                          out=str(tmp_path / "fresh")), prior=prior)
    assert fresh["mean_rgb"] != cont["mean_rgb"]
    # a picture is encoded into the prior's space
    picture = initial_image(str(first / "image.png"), prior, tuple(ended.shape))
    # the pixel prior's space is [-1, 1]: the picture holds the tensor clamped there and rounded to 8 bits
    assert (picture - ended.clamp(-1, 1)).abs().max() <= 1.0 / 255 + 1e-6


@pytest.mark.parametrize("make, match", [
    (lambda d: d / "missing.png", "not found"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "no image.safetensors"),
    (lambda d: (d / "bad.png").write_bytes(b"not a png") and d / "bad.png", "cannot read"),
    (lambda d: (d / "bad.safetensors").write_bytes(b"\x00" * 16) and d / "bad.safetensors", "cannot read"),
])
def test_a_bad_init_writes_nothing(world_folder, tmp_path, make, match):
    src = tmp_path / "src"
    src.mkdir()
    init = make(src)
    with pytest.raises(UserError, match=match):
        run_distill2d(Distill2DConfig(prompt="a red cube", guidance="sds", prior=str(world_folder), steps=1,
                                      init=str(init), out=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()


def test_an_init_of_the_wrong_shape_is_refused(world_folder, tmp_path):
    from safetensors.torch import save_file

    save_file({"image": torch.zeros(1, 3, 8, 8)}, str(tmp_path / "small.safetensors"))
    with pytest.raises(UserError, match="has shape"):
        run_distill2d(Distill2DConfig(prompt="a red cube", guidance="sds", prior=str(world_folder), steps=1,
                                      init=str(tmp_path / "small.safetensors"), out=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()


def test_pixel_space_optimises_the_picture_through_the_encoder(sd_folder, tmp_path):
    import numpy as np
    from PIL import Image
    from safetensors.torch import load_file

    from lods.pipelines.distill2d import initial_image

    prior = Prior.load(str(sd_folder))
    assert prior.is_latent
    out = tmp_path / "run"
    calls = []
    original = prior.encode_images
    prior.encode_images = lambda x: calls.append(x.requires_grad) or original(x)
    run_distill2d(Distill2DConfig(prompt="a red cube", guidance="sds", prior=str(sd_folder), steps=2, space="pixels",
                                  out=str(out), log_every=0), prior=prior)
    assert calls[:2] == [True, True]  # every step encodes the picture, differentiably
    picture = load_file(str(out / "image.safetensors"))["image"]
    assert picture.shape == (1, 3, prior.image_size, prior.image_size)
    saved = torch.from_numpy(np.asarray(Image.open(out / "image.png"), dtype=np.float32) / 255.0)
    assert (saved.permute(2, 0, 1) - picture[0].clamp(0, 1)).abs().max() <= 0.5 / 255 + 1e-6
    assert yaml.safe_load((out / "config.yaml").read_text())["space"] == "pixels"
    # a picture starts a pixel-space run as it is (no encoding); a latent does not fit it
    assert torch.allclose(initial_image(str(out / "image.png"), prior, tuple(picture.shape), pixels=True),
                          picture.clamp(0, 1), atol=0.5 / 255 + 1e-6)
    with pytest.raises(UserError, match="has shape"):
        initial_image(str(out), prior, (1, prior.latent_channels, prior.latent_size, prior.latent_size))
    with pytest.raises(UserError, match="space must be"):
        run_distill2d(Distill2DConfig(prompt="a red cube", guidance="sds", prior=str(sd_folder), steps=1, space="latent",
                                      out=str(tmp_path / "bad")))
