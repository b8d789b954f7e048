import math

import pytest
import torch

from lods.evaluate.metrics import MAX_PSNR, hsv_saturation, psnr, saturation, saturation_error, silhouette_iou, ssim
from lods.render.cameras import evaluation_cameras
from lods.world.render import render_scene
from lods.world.scene import parse_prompt


def truth(prompt="a red cube", n=4):
    scene, _ = parse_prompt(prompt)
    return render_scene(scene, evaluation_cameras(n), size=32)


def shift_right(x, px, fill):
    """Translate images right by `px` pixels, filling the gap with `fill` (white for rgb, 0 for alpha)."""
    out = torch.full_like(x, fill)
    out[..., px:] = x[..., :-px]
    return out


def test_truth_against_itself_is_perfect():
    t = truth()
    assert torch.all(psnr(t["rgb"], t["rgb"]) == MAX_PSNR)
    assert torch.allclose(ssim(t["rgb"], t["rgb"]), torch.ones(4), atol=1e-5)
    assert torch.all(silhouette_iou(t["alpha"], t["alpha"]) == 1)
    assert torch.allclose(saturation_error(t["rgb"], t["rgb"], t["alpha"], t["alpha"]), torch.zeros(4))


def test_shifted_object_scores_worse_per_image():
    t = truth()
    rgb, alpha = shift_right(t["rgb"], 3, 1.0), shift_right(t["alpha"], 3, 0.0)
    assert torch.all(psnr(rgb, t["rgb"]) < 25)
    assert torch.all(ssim(rgb, t["rgb"]) < 0.95)
    iou = silhouette_iou(alpha, t["alpha"])
    assert torch.all(iou < 0.9) and torch.all(iou > 0.3)
    # a larger shift is worse still
    rgb6 = shift_right(t["rgb"], 6, 1.0)
    assert torch.all(psnr(rgb6, t["rgb"]) < psnr(rgb, t["rgb"]))
    assert torch.all(ssim(rgb6, t["rgb"]) < ssim(rgb, t["rgb"]))


def test_psnr_known_value_and_per_image():
    a = torch.zeros(2, 3, 8, 8)
    b = a.clone()
    b[0] += 0.1  # mse 0.01 -> 20 dB
    b[1] += 0.01  # mse 1e-4 -> 40 dB
    assert torch.allclose(psnr(a, b), torch.tensor([20.0, 40.0]), atol=1e-4)


def test_ssim_of_constant_images_matches_the_formula():
    a = torch.full((1, 3, 16, 16), 0.2)
    b = torch.full((1, 3, 16, 16), 0.6)
    c1 = 0.01**2
    expected = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)  # variances are zero: the contrast term is 1
    assert ssim(a, b).item() == pytest.approx(expected, rel=1e-4)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(3, 3, 20, 20, generator=g), torch.rand(3, 3, 20, 20, generator=g)
    assert torch.allclose(ssim(x, y), ssim(y, x), atol=1e-6)
    assert torch.all(ssim(x, y) < 0.2)


def test_ssim_handles_images_smaller_than_the_window():
    x = torch.rand(1, 3, 8, 8)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-5)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))


def test_silhouette_iou_known_value():
    a = torch.zeros(3, 1, 4, 4)
    b = torch.zeros(3, 1, 4, 4)
    a[0, :, :, :2] = 1  # left half
    b[0, :, :2, :] = 1  # top half: overlap 4 of 12
    a[1] = 1  # full vs empty
    # image 2: both empty counts as a match
    assert torch.allclose(silhouette_iou(a, b), torch.tensor([4 / 12, 0.0, 1.0]))
    assert silhouette_iou(a[:1] * 0.4, a[:1]).item() == 0.0  # below the threshold: empty


def test_saturation_values_and_mask():
    rgb = torch.ones(1, 3, 2, 2)
    rgb[0, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0])  # pure red: saturation 1
    rgb[0, :, 0, 1] = torch.tensor([0.8, 0.4, 0.4])  # 0.5
    rgb[0, :, 1, 0] = 0.0  # black: 0
    assert hsv_saturation(rgb)[0, 0].flatten().tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0])
    mask = torch.zeros(1, 1, 2, 2)
    mask[0, 0, 0] = 1
    assert saturation(rgb, mask).item() == pytest.approx(0.75)
    assert saturation(rgb).item() == pytest.approx(0.375)
    assert saturation(rgb, torch.zeros(1, 1, 2, 2)).item() == 0.0


def test_recoloured_object_has_saturation_error():
    red, gray = truth("a red cube"), truth("a gray cube")
    err = saturation_error(gray["rgb"], red["rgb"], gray["alpha"], red["alpha"])
    assert torch.all(err < -0.5)  # gray is far less saturated than red
    assert torch.all(saturation_error(red["rgb"], gray["rgb"], red["alpha"], gray["alpha"]) > 0.5)
    # an over-saturated result (colour pushed away from gray) has a positive error
    over = (0.5 + 1.6 * (red["rgb"] - 0.5)).clamp(0, 1)
    over = torch.where(red["alpha"] > 0.5, over, red["rgb"])
    assert torch.all(saturation_error(over, red["rgb"], red["alpha"], red["alpha"]) > 0.02)
    assert not math.isnan(err.sum().item())
