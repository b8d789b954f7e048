import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # 2 OpenMP threads on a shared 2-core machine make small ops far slower; tests use one.
    torch.set_num_threads(1)
    yield


def make_red_cone(n: int = 3000, seed: int = 0):
    """A GaussianScene of a solid red cone standing on the world's floor: apex up (+z) at z = 0.5, base radius 0.4
    at z = -0.4. An asymmetric scene for up-axis checks."""
    from lods.scenes.gaussians import GaussianScene, rgb_to_sh

    g = torch.Generator().manual_seed(seed)
    pts = []
    while sum(len(p) for p in pts) < n:
        cand = torch.rand(4 * n, 3, generator=g) * torch.tensor([0.8, 0.8, 0.9]) - torch.tensor([0.4, 0.4, 0.4])
        radius = 0.4 * (0.5 - cand[:, 2]) / 0.9  # the cone's radius at height z
        pts.append(cand[cand[:, :2].norm(dim=-1) <= radius])
    means = torch.cat(pts)[:n]
    return GaussianScene.from_tensors({
        "means": means,
        "scales": torch.full((n, 3), 0.025).log(),
        "quats": torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n, 1),
        "opacities": torch.full((n,), 3.0),  # sigmoid(3) = 0.95
        "f_dc": rgb_to_sh(torch.tensor([0.85, 0.1, 0.1])).repeat(n, 1),
        "f_rest": torch.zeros(n, 0, 3),
    })


@pytest.fixture
def red_cone():
    return make_red_cone()


@pytest.fixture(scope="session")
def red_cone_factory():
    return make_red_cone
