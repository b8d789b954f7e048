"""scripts/probe_static_fit.py: a fresh learned branch fitted to one image held still, on a tiny prior."""

import json

import pytest

import lods.pipelines.distill2d as distill2d_module
from lods.evaluate.set_metrics import prior_denoising_loss

from .conftest import load_script


def test_the_image_is_the_runs_own_and_the_branch_starts_untrained(tmp_path, tiny_prior_folder, tiny_prior):
    probe = load_script("probe_static_fit")
    folder, prior = tiny_prior_folder, tiny_prior
    z = probe.final_image("a red cube", "lods-embedding", 1000.0, 2, 0, prior, tmp_path / "lods")
    assert distill2d_module.prior_denoising_loss is prior_denoising_loss  # the capture is undone
    metrics = json.loads((tmp_path / "lods" / "metrics.json").read_text())
    assert prior_denoising_loss(prior, z, "a red cube", seed=0) == pytest.approx(metrics["prior_denoising_loss"], rel=1e-6)

    rows = probe.main(["a red cube", "--prior", folder, "--out", str(tmp_path / "probe"), "--run-steps", "2",
                       "--fit-steps", "0,3", "--images", "lods,truth", "--branches", "lods-embedding,lods-lora"])
    assert [(r["image"], r["branch"]) for r in rows] == [("lods", "lods-embedding"), ("lods", "lods-lora"),
                                                         ("truth", "lods-embedding"), ("truth", "lods-lora")]
    lines = (tmp_path / "probe" / "results.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == rows
    for r in rows:
        # before any step the branch is the frozen unconditional one: its ratio is the untrained loss's
        assert r["fit_ratio"]["0"] == pytest.approx(
            r["untrained_loss"] / r["clean_reference_loss"], rel=2e-3)
        assert r["fit_ratio"]["3"] != r["fit_ratio"]["0"]  # it trains
        assert len(r["by_t_learned"]) == len(r["by_t_clean_reference"]) == probe.BANDS
