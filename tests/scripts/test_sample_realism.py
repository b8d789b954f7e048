"""scripts/sample_realism.py: the prior's own samples, the truth and distill2d results on one realism yardstick."""

import json

import pytest

from lods.evaluate.set_metrics import prior_denoising_loss
from lods.pipelines.distill2d import Distill2DConfig, run_distill2d

from .conftest import load_script


def test_rows_for_the_truth_each_scale_and_each_run(tmp_path, tiny_prior_folder, tiny_prior):
    script = load_script("sample_realism")
    folder, prior = tiny_prior_folder, tiny_prior
    run_distill2d(Distill2DConfig(prompt="a red cube", guidance="sds", prior=folder, steps=1,
                                  out=str(tmp_path / "a-red-cube")), prior=prior)
    out = tmp_path / "rows.jsonl"
    rows = script.main(["a red cube", "--prior", folder, "--cfgs", "1,7.5", "--n", "2",
                        "--runs", str(tmp_path / "{slug}"), "--out", str(out)])
    assert [r["source"] for r in rows] == ["truth", "samples@1", "samples@7.5", str(tmp_path / "a-red-cube")]
    assert [r["n"] for r in rows][1:] == [2, 2, 1] and rows[0]["n"] >= 1
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows
    # a run's row is its saved picture, encoded, scored by the prior's own denoising loss
    picture = prior.encode_images(script.picture(tmp_path / "a-red-cube" / "image.png"))
    assert rows[-1]["realism_mean"] == pytest.approx(round(prior_denoising_loss(prior, picture, "a red cube", seed=0), 4))
    for r in rows:
        assert r["realism_min"] <= r["realism_mean"] <= r["realism_max"] and r["realism_sd"] >= 0
