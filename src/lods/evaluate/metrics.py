"""Image metrics against ground truth: PSNR, SSIM, silhouette IoU and saturation (for SDS's over-saturation).

Every function takes batches (B, C, H, W) with values in [0, 1] and returns one value per image, shape (B,).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MAX_PSNR = 100.0  # PSNR of identical images (the MSE is floored at 1e-10 so it stays finite)


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.ndim != 4 or a.shape != b.shape:
        raise ValueError(f"expected two batches (B, C, H, W) of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB (peak 1), per image; at most MAX_PSNR."""
    _check_pair(a, b)
    mse = (a.float() - b.float()).pow(2).mean(dim=(1, 2, 3))
    return -10 * torch.log10(mse.clamp(min=10 ** (-MAX_PSNR / 10)))


def _gaussian_window(size: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) per image: gaussian window, valid positions only, channels averaged.

    Images smaller than the window use a window of the image's (odd) size.
    """
    _check_pair(a, b)
    a, b = a.float(), b.float()
    C = a.shape[1]
    window = min(window, *(s if s % 2 else s - 1 for s in a.shape[-2:]))
    g = _gaussian_window(window, sigma, a.device, a.dtype)
    kx = g.reshape(1, 1, 1, -1).expand(C, 1, 1, window)
    ky = g.reshape(1, 1, -1, 1).expand(C, 1, window, 1)

    def blur(x):
        return F.conv2d(F.conv2d(x, kx, groups=C), ky, groups=C)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = k1**2, k2**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean(dim=(1, 2, 3))


def silhouette_iou(alpha_a: torch.Tensor, alpha_b: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Intersection over union of the masks alpha > threshold, per image (1 where both are empty)."""
    _check_pair(alpha_a, alpha_b)
    ma, mb = alpha_a > threshold, alpha_b > threshold
    inter = (ma & mb).flatten(1).sum(1).float()
    union = (ma | mb).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def hsv_saturation(rgb: torch.Tensor) -> torch.Tensor:
    """HSV saturation (max - min) / max per pixel, (B, 1, H, W); 0 for black."""
    mx = rgb.amax(dim=1, keepdim=True)
    mn = rgb.amin(dim=1, keepdim=True)
    return torch.where(mx > 0, (mx - mn) / mx.clamp(min=1e-8), torch.zeros_like(mx))


def saturation(rgb: torch.Tensor, mask: torch.Tensor | None = None, threshold: float = 0.5) -> torch.Tensor:
    """Mean HSV saturation per image over the pixels where mask > threshold (all pixels without a mask; 0 if empty)."""
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f"expected rgb (B, 3, H, W), got {tuple(rgb.shape)}")
    sat = hsv_saturation(rgb.float().clamp(0, 1))
    if mask is None:
        return sat.mean(dim=(1, 2, 3))
    m = (mask > threshold).float()
    if m.shape != sat.shape:
        raise ValueError(f"expected mask (B, 1, H, W) of shape {tuple(sat.shape)}, got {tuple(mask.shape)}")
    return (sat * m).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3)).clamp(min=1)


def saturation_error(rgb: torch.Tensor, rgb_true: torch.Tensor, mask_pred: torch.Tensor, mask_true: torch.Tensor) -> torch.Tensor:
    """The result's mean saturation over its own object mask minus the truth's over its mask (> 0: over-saturated)."""
    return saturation(rgb, mask_pred) - saturation(rgb_true, mask_true)
