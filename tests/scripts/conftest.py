"""Loading a file of scripts/ as a module (scripts/ is not a package)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_prior_folder(tmp_path) -> str:
    """A tiny SD-shaped prior of the world, built for the test (seconds)."""
    from lods.priors.tiny_sd import build_tiny_world_prior

    return str(build_tiny_world_prior(tmp_path / "prior"))


@pytest.fixture
def tiny_prior(tiny_prior_folder):
    from lods.priors.prior import Prior

    return Prior.load(tiny_prior_folder)
