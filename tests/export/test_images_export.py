import numpy as np
import pytest
import torch
from PIL import Image

from lods.export.images import image_grid, save_image, to_uint8


def test_to_uint8_layout_and_rounding():
    img = torch.zeros(3, 2, 4)
    img[0] = 1.0
    img[2, 1, 3] = 0.5
    arr = to_uint8(img)
    assert arr.shape == (2, 4, 3) and arr.dtype == np.uint8
    assert (arr[..., 0] == 255).all() and arr[1, 3, 2] == 128
    assert to_uint8(torch.full((1, 3, 3), 2.0)).shape == (3, 3)  # grey, clamped
    with pytest.raises(ValueError):
        to_uint8(torch.zeros(2, 3, 3))


def test_image_grid_places_tiles_row_major():
    imgs = torch.stack([torch.full((3, 4, 5), i / 10) for i in range(5)])
    grid = image_grid(imgs, nrow=3, padding=1, pad_value=1.0)
    assert grid.shape == (3, 2 * 4 + 3, 3 * 5 + 4)
    assert grid[0, 1, 1].item() == pytest.approx(0.0)
    assert grid[0, 1 + 4 + 1, 1 + 5 + 1].item() == pytest.approx(0.4)  # second row, second column
    assert grid[0, 0, 0].item() == 1.0  # padding
    assert grid[0, 6, 2 * 6 + 1].item() == 1.0  # the missing sixth tile stays at pad_value


def test_save_image_atomic_png_and_batch(tmp_path):
    path = save_image(torch.rand(3, 6, 7), tmp_path / "a" / "x.png")
    with Image.open(path) as im:
        assert im.size == (7, 6)
    path = save_image(torch.rand(4, 3, 5, 5), tmp_path / "b.png", nrow=2)
    with Image.open(path) as im:
        assert im.size == (10, 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b.png"]
