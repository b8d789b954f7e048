"""Shared by the gap-benchmark tests: a tiny random world prior, and a results.csv read back."""

import csv

import pytest


@pytest.fixture(scope="module")
def world_prior(tmp_path_factory):
    from lods.priors.tiny_sd import build_tiny_world_prior

    return str(build_tiny_world_prior(tmp_path_factory.mktemp("world") / "prior"))


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
