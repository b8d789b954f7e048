"""Image-to-3D: the background rule, framing, bad input, outputs and metrics, `--guidance none`, exact resume."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lods.errors import UserError
from lods.pipelines.run_config import ExportConfig, load_run_config
from lods.pipelines.image_to_3d import ImageTo3DConfig, image_metrics, image_preset_config, reference_cameras, run_image_to_3d
from lods.pipelines.reference_image import FILL_TARGET, frame_object, prepare_reference, reference_targets, remove_background
from lods.priors.tiny_sd import build_tiny_world_prior
from lods.render.cameras import CameraSamplerConfig
from lods.utils.io import load_checkpoint
from lods.world.render import render_scene
from lods.world.scene import parse_prompt


@pytest.fixture(scope="module")
def prior_folder(tmp_path_factory):
    return str(build_tiny_world_prior(tmp_path_factory.mktemp("prior") / "world"))


@pytest.fixture(scope="module")
def world_image(tmp_path_factory):
    """A 32² RGBA front render of a world scene."""
    scene, _ = parse_prompt("a red cube")
    r = render_scene(scene, reference_cameras(), size=32)
    rgba = torch.cat([r["rgb"][0], r["alpha"][0]], 0)
    path = tmp_path_factory.mktemp("img") / "cube.png"
    Image.fromarray((rgba * 255).round().byte().permute(1, 2, 0).numpy(), "RGBA").save(path)
    return path


def tiny_config(prior_folder, image, out, guidance="lods-embedding", steps=4, backbone="gs", prompt="a red cube"):
    cfg = image_preset_config("fast", backbone, guidance)
    cfg.image, cfg.prompt, cfg.prior, cfg.out = str(image), prompt, prior_folder, str(out)
    cfg.steps = steps
    cfg.render_size = 16
    cfg.checkpoint_every = 2
    cfg.cameras = CameraSamplerConfig(views_per_step=2)
    cfg.gaussians = {"num_points": 200}
    cfg.export = ExportConfig(mesh_resolution=16, turntable_frames=2, turntable_size=16, views_size=16, eval_views=4)
    return cfg


def synthetic_rgb():
    """40² bluish-grey noisy background; a red square with a background-coloured highlight inside; a second,
    smaller green square (above the speck threshold); a 1-pixel speck."""
    rng = np.random.default_rng(0)
    bg = np.array([0.3, 0.5, 0.7], dtype=np.float32)
    img = np.clip(bg + rng.uniform(-0.03, 0.03, (40, 40, 3)), 0, 1).astype(np.float32)
    truth = np.zeros((40, 40), bool)
    img[8:24, 6:22] = (0.9, 0.1, 0.1)
    truth[8:24, 6:22] = True
    img[14:17, 12:15] = bg  # a highlight of the background colour, enclosed by the object
    img[26:34, 26:34] = (0.1, 0.8, 0.2)
    truth[26:34, 26:34] = True
    img[3, 35] = (0.0, 0.0, 0.0)  # a speck
    return img, truth


def test_background_rule_on_a_synthetic_rgb_image():
    img, truth = synthetic_rgb()
    mask, info = remove_background(img)
    assert np.array_equal(mask, truth)
    assert np.allclose(info["background_colour"], [0.3, 0.5, 0.7], atol=0.02)


def test_rgb_and_rgba_world_renders_prepare_alike(tmp_path, world_image):
    rgba, info = prepare_reference(world_image, 32)
    assert rgba.shape == (32, 32, 4) and rgba.dtype == np.uint8
    assert info["mask"] == "alpha" and not info["refit"]  # a world render keeps its framing
    rgb_path = tmp_path / "cube_rgb.png"
    Image.open(world_image).convert("RGB").save(rgb_path)
    rgba2, info2 = prepare_reference(rgb_path, 32)
    assert info2["mask"] == "border-colour" and not info2["refit"]
    a, b = rgba[..., 3] >= 128, rgba2[..., 3] >= 128
    assert (a & b).sum() / (a | b).sum() > 0.9


def test_framing_recentres_and_rescales_a_small_object():
    rgb = np.ones((64, 48, 3), np.float32)
    alpha = np.zeros((64, 48), np.float32)
    alpha[4:12, 30:38] = 1.0  # small, off-centre, in a portrait image
    out_rgb, out_a, info = frame_object(rgb, alpha)
    assert info["refit"] and out_a.shape[0] == out_a.shape[1]
    ys, xs = np.nonzero(out_a > 0.5)
    side = out_a.shape[0]
    assert abs((ys.max() + 1 - ys.min()) / side - FILL_TARGET) < 0.05
    assert abs((ys.min() + ys.max() + 1) / 2 / side - 0.5) < 0.05 and abs((xs.min() + xs.max() + 1) / 2 / side - 0.5) < 0.05


def _bad_images(tmp_path):
    Image.fromarray(np.zeros((32, 32, 4), np.uint8), "RGBA").save(tmp_path / "transparent.png")
    Image.fromarray(np.zeros((12, 40, 3), np.uint8)).save(tmp_path / "small.png")
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(tmp_path / "flat.png")
    (tmp_path / "notes.png").write_text("not an image")
    return {"missing.png": "no such image", "notes.png": "not an image", "transparent.png": "fully transparent",
            "small.png": "too small", "flat.png": "no object"}


def test_bad_inputs_raise_and_write_nothing(prior_folder, tmp_path):
    for name, match in _bad_images(tmp_path).items():
        out = tmp_path / f"run-{name}"
        with pytest.raises(UserError, match=match):
            run_image_to_3d(tiny_config(prior_folder, tmp_path / name, out))
        assert not out.exists(), name


def test_bad_options_and_missing_prompt(prior_folder, tmp_path, world_image):
    out = tmp_path / "run"
    with pytest.raises(UserError, match="unknown guidance"):
        run_image_to_3d(tiny_config(prior_folder, world_image, out, guidance="nope"))
    with pytest.raises(UserError, match="dragon"):
        run_image_to_3d(tiny_config(prior_folder, world_image, out, prompt="a red dragon"))
    other = tmp_path / "other-prior"
    other.mkdir()  # no lods_prior.json: not a world prior, so the object cannot be named
    cfg = tiny_config(prior_folder, world_image, out, prompt="")
    cfg.prior = str(other)
    with pytest.raises(UserError, match="--prompt is required"):
        run_image_to_3d(cfg)
    assert not out.exists()


def test_a_run_writes_outputs_and_reference_metrics(prior_folder, tmp_path, world_image):
    out = tmp_path / "run"
    metrics = run_image_to_3d(tiny_config(prior_folder, world_image, out, prompt=""))
    for name in ("config.yaml", "metrics.json", "views.png", "reference.png", "model.ply", "checkpoints/last.safetensors"):
        assert (out / name).exists(), name
    saved = json.loads((out / "metrics.json").read_text())
    info = saved["image_to_3d"]
    assert info["prompt_source"] == "judge" and parse_prompt(saved["prompt"])  # the judge named a world caption
    for k in ("psnr", "ssim", "iou"):
        assert np.isfinite(info["reference_view"][k])
    per_view = info["judge_feature_similarity_per_view"]
    assert len(per_view) == 4 and info["judge_feature_similarity"] == pytest.approx(np.mean(per_view), abs=1e-6)
    assert "ground_truth" in saved and saved["ground_truth"]["n_views"] == 4
    assert {"loss_rgb", "loss_mask", "loss_distill", "loss_learned"} <= set(saved["final_losses"])
    assert metrics["outputs"]["ply"] == "model.ply"
    cfg = load_run_config(out)
    assert isinstance(cfg, ImageTo3DConfig) and cfg.image == str(world_image) and cfg.preprocess["mask"] == "alpha"
    assert np.array(Image.open(out / "reference.png")).shape == (16, 16, 4)


def test_reconstruction_only_baseline(prior_folder, tmp_path, world_image):
    out = tmp_path / "none"
    cfg = tiny_config(prior_folder, world_image, out, guidance="none", steps=6)
    metrics = run_image_to_3d(cfg)
    losses = [h["loss_rgb"] for h in metrics["history"]]
    assert "loss_distill" not in metrics["final_losses"] and losses[-1] < losses[0]
    tensors, _ = load_checkpoint(out / "checkpoints" / "last.safetensors")
    assert not any(k.startswith("guidance/") for k in tensors)


class Killed(Exception):
    pass


@pytest.mark.parametrize("guidance", ["lods-embedding", "none"])
def test_resume_equals_uninterrupted(prior_folder, tmp_path, world_image, guidance):
    run_image_to_3d(tiny_config(prior_folder, world_image, tmp_path / "whole", guidance, steps=5))

    def kill_at_3(step, total, logs):  # after the checkpoint at step 2
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        run_image_to_3d(tiny_config(prior_folder, world_image, tmp_path / "cut", guidance, steps=5), progress=kill_at_3)
    cfg = load_run_config(tmp_path / "cut")
    world_image.rename(world_image.with_suffix(".moved"))  # the resumed run reads reference.png, not the input
    try:
        run_image_to_3d(cfg, resume=True)
    finally:
        world_image.with_suffix(".moved").rename(world_image)
    a, _ = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.safetensors")
    b, meta = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.safetensors")
    assert meta["step"] == 5 and a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "lods.cli", "image-to-3d", str(tmp_path / "notes.png"), "--out", str(out),
                           "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lods: error:") and "not an image" in lines[0]
    assert not out.exists()


def test_difference_gradients_get_sds_scale_and_the_baselines_run(prior_folder, tmp_path, world_image):
    from lods.guidance import GUIDANCES

    for name, klass in GUIDANCES.items():
        cfg = image_preset_config("fast", "gs", name)
        assert cfg.lambdas["distill"] == (20.0 if klass.difference_gradient else 1.0), name
    assert {n for n, k in GUIDANCES.items() if k.difference_gradient} == {"csd", "lods-embedding", "lods-lora"}
    for name in ("ism", "sdi", "nfsd", "asd"):
        out = tmp_path / name
        metrics = run_image_to_3d(tiny_config(prior_folder, world_image, out, guidance=name, steps=2))
        assert (out / "model.ply").exists() and metrics["steps"] == 2


class FlatScene(torch.nn.Module):
    """Renders one fixed image (and alpha) from every camera: the reference itself, or a blank."""

    def __init__(self, rgb, alpha):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.rgb, self.alpha = rgb, alpha

    def render(self, cams, size, background=None):
        rgb = F.interpolate(self.rgb, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        a = F.interpolate(self.alpha, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return {"rgb": rgb.expand(len(cams), -1, -1, -1), "alpha": a.expand(len(cams), -1, -1, -1)}


def test_image_metrics_score_a_perfect_and_a_blank_reconstruction(world_image):
    rgba, _ = prepare_reference(world_image, 32)
    t_rgb, t_alpha = reference_targets(rgba)
    cfg = ImageTo3DConfig(prompt="a red cube", image=str(world_image))
    cfg.export.eval_views = 4
    perfect = image_metrics(cfg, FlatScene(t_rgb, t_alpha), rgba)
    ref = perfect["reference_view"]
    assert ref["psnr"] > 60 and ref["ssim"] == pytest.approx(1.0, abs=1e-4) and ref["iou"] == pytest.approx(1.0)
    assert perfect["judge_feature_similarity_reference_view"] == pytest.approx(1.0, abs=1e-5)
    blank = image_metrics(cfg, FlatScene(torch.ones_like(t_rgb), torch.zeros_like(t_alpha)), rgba)
    assert blank["reference_view"]["iou"] == 0.0 and blank["reference_view"]["psnr"] < ref["psnr"]
    assert blank["judge_feature_similarity"] < perfect["judge_feature_similarity"] - 0.05
