"""Turntable videos and evaluation-view grids of any Scene3D, written atomically."""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..render.cameras import Cameras, evaluation_cameras, orbit_cameras
from ..scenes.base import Scene3D
from ..utils.io import atomic_write_bytes, tmp_path
from .images import image_grid, save_image, to_uint8


def ffmpeg_exe() -> str | None:
    """The ffmpeg binary imageio-ffmpeg finds (its bundled one, or IMAGEIO_FFMPEG_EXE / PATH), or None."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return None


@contextmanager
def eval_mode(scene: Scene3D):
    """Render deterministically (no sample jitter), then restore the scene's training flag."""
    was_training = scene.training
    scene.eval()
    try:
        yield scene
    finally:
        scene.train(was_training)


@torch.no_grad()
def render_views(
    scene: Scene3D, cameras: Cameras, size: int, background: torch.Tensor | None = None, batch: int = 4
) -> torch.Tensor:
    """RGB renders (B, 3, size, size) on the CPU, `batch` cameras at a time, in eval mode."""
    frames = []
    with eval_mode(scene):
        for s in range(0, len(cameras), batch):
            frames.append(scene.render(cameras[s : s + batch], size, background)["rgb"].float().clamp(0, 1).cpu())
    return torch.cat(frames)


def turntable_cameras(frames: int = 60, elevation: float = 20.0, distance: float = 2.5, fov: float = 40.0) -> Cameras:
    """`frames` cameras evenly around a full turn (the last one stops short of the first)."""
    az = torch.arange(frames, dtype=torch.float32) * (360.0 / frames)
    return orbit_cameras(torch.full((frames,), float(elevation)), az, distance, fov)


def _write_mp4(frames: list[np.ndarray], path: Path, fps: float) -> None:
    import imageio.v2 as imageio

    name = str(tmp_path(path, suffix=path.suffix))  # 0644-style permissions, unlike mkstemp's 0600
    try:
        # macro_block_size 2: yuv420p needs even sides, and the usual 16 would rescale small renders
        with imageio.get_writer(
            name, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p", quality=8, macro_block_size=2
        ) as writer:
            for f in frames:
                writer.append_data(f)
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)


def _write_gif(frames: list[np.ndarray], path: Path, fps: float) -> None:
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    atomic_write_bytes(path, buf.getvalue())


def render_turntable(
    scene: Scene3D,
    path,
    size: int = 128,
    frames: int = 60,
    elevation: float = 20.0,
    distance: float = 2.5,
    fov: float = 40.0,
    fps: float = 24,
    background: torch.Tensor | None = None,
) -> Path:
    """A full turn around the scene as an mp4 (H.264 through imageio-ffmpeg), or as a gif when `path` ends in
    .gif or no ffmpeg is found (then the suffix becomes .gif). Returns the path actually written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = render_views(scene, turntable_cameras(frames, elevation, distance, fov), size, background)
    images = [to_uint8(im) for im in rgb]
    if path.suffix.lower() != ".gif" and ffmpeg_exe() is not None:
        _write_mp4(images, path, fps)
        return path
    path = path.with_suffix(".gif")
    _write_gif(images, path, fps)
    return path


def save_views_grid(
    scene: Scene3D, path, size: int = 128, n: int = 8, nrow: int = 4, background: torch.Tensor | None = None
) -> Path:
    """The fixed evaluation views (`evaluation_cameras(n)`) tiled `nrow` per row into one PNG, no padding:
    min(n, nrow)·size wide and ceil(n / nrow)·size high."""
    rgb = render_views(scene, evaluation_cameras(n), size, background)
    return save_image(image_grid(rgb, nrow), path)
