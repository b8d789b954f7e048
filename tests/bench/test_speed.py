"""The speed benchmark on tiny random priors: every method is timed, ratios to SDS are printed."""

import json

import pytest

from lods.errors import UserError
from lods.bench.speed import METHODS, SpeedConfig, run_speed_bench
from lods.priors.tiny_sd import build_tiny_sd, build_tiny_world_prior


@pytest.fixture(scope="module")
def world_prior(tmp_path_factory):
    return str(build_tiny_world_prior(tmp_path_factory.mktemp("world") / "prior"))


@pytest.fixture(scope="module")
def sd_prior(tmp_path_factory):
    return str(build_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd", latent=True))


def test_speed_bench_times_every_method_with_ratios(world_prior, tmp_path):
    printed = []
    result = run_speed_bench(SpeedConfig(prior=world_prior, steps=2, warmup=1, size=16, batch=2, out=str(tmp_path)),
                             echo=printed.append)
    text = printed[-1]
    for m in METHODS:
        assert f"| {m} |" in text
    assert "× SDS time" in text and "| sds |" in text
    (section,) = result["sections"]
    assert set(section["methods"]) == set(METHODS)
    for m, e in section["methods"].items():
        assert "error" not in e, e
        assert e["n"] == 2 and e["median_ms"] > 0 and e["time_ratio"] > 0
        assert e["peak_mb"] > 0
    assert section["methods"]["sds"]["time_ratio"] == pytest.approx(1.0)
    # the learned branch's grad-enabled pass holds activations for its backward: more memory than SDS's no-grad pair
    assert section["methods"]["lods-embedding"]["peak_mb"] > section["methods"]["sds"]["peak_mb"]
    assert section["methods"]["sds"]["learned_params"] == 0 and section["methods"]["lods-embedding"]["learned_params"] > 0
    saved = json.loads((tmp_path / "speed.json").read_text())
    assert saved["sections"][0]["methods"].keys() == section["methods"].keys()
    assert (tmp_path / "speed.md").read_text().strip() == text.strip()


def test_speed_bench_latent_section_at_several_batches(world_prior, sd_prior):
    printed = []
    cfg = SpeedConfig(prior=world_prior, steps=1, warmup=0, size=16, batch=1, methods=["sds", "lods-lora"], memory=False,
                      sd21=True, sd21_folder=sd_prior, sd21_size=32, sd21_batches=[1, 2])
    result = run_speed_bench(cfg, echo=printed.append)
    assert [s["batch"] for s in result["sections"]] == [1, 1, 2]
    assert "latent" in result["sections"][1]["prior"]
    for s in result["sections"]:
        assert all("median_ms" in e for e in s["methods"].values())


def test_speed_bench_rejects_bad_settings():
    with pytest.raises(UserError):
        SpeedConfig(methods=["nope"]).validate()
    with pytest.raises(UserError):
        SpeedConfig(steps=0).validate()


def test_cli_speed_prints_the_table(world_prior):
    from typer.testing import CliRunner

    from lods.cli import app

    res = CliRunner().invoke(app, ["bench", "speed", "--prior", world_prior, "--steps", "1", "--warmup", "0", "--size",
                                   "16", "--batch", "1", "--methods", "sds,csd", "--no-memory"])
    assert res.exit_code == 0, res.output
    assert "| sds |" in res.output and "| csd |" in res.output and "1.00" in res.output
    assert "lods bench speed --prior" in res.output
