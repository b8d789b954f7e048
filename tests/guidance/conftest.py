import pytest

from lods.priors.prior import Prior
from lods.priors.tiny_sd import build_tiny_sd


@pytest.fixture(scope="session")
def folder(tmp_path_factory):
    """A tiny pixel-space SD-layout prior folder, built once."""
    return build_tiny_sd(tmp_path_factory.mktemp("sd") / "px", latent=False)


@pytest.fixture
def prior(folder):
    """A fresh load per test: LoRA methods add adapters to its UNet."""
    return Prior.load(str(folder))
