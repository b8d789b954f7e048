import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from PIL import Image

from lods.export import video
from lods.export.video import render_turntable, save_views_grid, turntable_cameras
from lods.scenes.base import Scene3D


class Compass(Scene3D):
    """Renders a flat colour that encodes the camera's azimuth (red) and counts its render calls; no geometry."""

    def __init__(self):
        super().__init__()
        self.calls, self.modes = 0, []

    def render(self, cameras, size, background=None):
        self.calls += 1
        self.modes.append(self.training)
        b = len(cameras)
        red = (cameras.azimuth_deg % 360 / 360).view(b, 1, 1, 1).expand(b, 1, size, size)
        rgb = torch.cat([red, torch.full_like(red, 0.5), torch.zeros_like(red)], 1)
        return {"rgb": rgb, "alpha": torch.ones(b, 1, size, size), "depth": torch.ones(b, 1, size, size)}


def test_turntable_mp4_frames(tmp_path):
    if video.ffmpeg_exe() is None:
        pytest.skip("no ffmpeg")
    scene = Compass()
    path = render_turntable(scene, tmp_path / "turn.mp4", size=32, frames=6, fps=6)
    assert path == tmp_path / "turn.mp4" and sorted(p.name for p in tmp_path.iterdir()) == ["turn.mp4"]
    frames = [f for f in imageio.get_reader(path, format="FFMPEG")]
    assert len(frames) == 6 and frames[0].shape == (32, 32, 3)
    reds = [f[..., 0].mean() for f in frames]
    assert reds == sorted(reds) and reds[0] < 10 and reds[-1] > 190  # azimuth 0 .. 300 degrees
    assert scene.modes == [False] * scene.calls and scene.training  # rendered in eval mode, flag restored


def test_turntable_gif_when_no_ffmpeg(tmp_path, monkeypatch):
    monkeypatch.setattr(video, "ffmpeg_exe", lambda: None)
    path = render_turntable(Compass(), tmp_path / "turn.mp4", size=16, frames=5, fps=10)
    assert path == tmp_path / "turn.gif" and path.exists()
    with Image.open(path) as im:
        assert im.n_frames == 5 and im.size == (16, 16)


def test_turntable_gif_by_suffix(tmp_path):
    path = render_turntable(Compass(), tmp_path / "t.gif", size=16, frames=3)
    with Image.open(path) as im:
        assert im.n_frames == 3


def test_turntable_cameras_cover_a_full_turn():
    cams = turntable_cameras(4, elevation=10, distance=3.0)
    assert cams.azimuth_deg.tolist() == [0.0, 90.0, 180.0, 270.0]
    assert torch.allclose(cams.c2w[:, :3, 3].norm(dim=-1), torch.full((4,), 3.0))


def test_views_grid_png_size(tmp_path):
    path = save_views_grid(Compass(), tmp_path / "views.png", 16, n=8)
    with Image.open(path) as im:
        assert im.size == (4 * 16, 2 * 16) and im.mode == "RGB"
        arr = np.asarray(im)
    # row-major tiles in azimuth order: red grows left to right, then on the second row
    reds = [arr[r * 16 + 8, c * 16 + 8, 0] for r in range(2) for c in range(4)]
    assert reds == sorted(reds)


def test_views_grid_of_a_field(tmp_path):
    from lods.scenes.field import FieldConfig, RadianceField

    field = RadianceField(FieldConfig(resolution=16, channels=4, hidden_dim=16, num_samples=16))
    path = save_views_grid(field, tmp_path / "v.png", 8, n=4, nrow=2)
    with Image.open(path) as im:
        assert im.size == (16, 16)
