"""`lods generate --prompts FILE`: the prior loads once, a failed prompt is recorded, a rerun skips finished ones,
and LoRA adapters do not leak between runs that share one prior (tiny world prior, 2-step runs at 16²)."""

import csv
import json
from pathlib import Path

import pytest
import torch

from lods.errors import UserError
from lods.bench.batch import BatchConfig, plan_batch, read_prompts, run_batch, run_prompt
from lods.pipelines.presets import preset_config
from lods.pipelines.run_config import ExportConfig
from lods.pipelines.text_to_3d import run_generate
from lods.priors import lora
from lods.priors.prior import Prior
from lods.priors.tiny_sd import build_tiny_world_prior
from lods.render.cameras import CameraSamplerConfig
from lods.utils.io import load_checkpoint


@pytest.fixture(scope="module")
def prior_folder(tmp_path_factory):
    return str(build_tiny_world_prior(tmp_path_factory.mktemp("prior") / "world"))


def template(prior_folder, guidance="sds", steps=2):
    cfg = preset_config("fast", "gs", guidance)
    cfg.prior, cfg.steps, cfg.render_size, cfg.checkpoint_every = prior_folder, steps, 16, 2
    cfg.cameras = CameraSamplerConfig(views_per_step=2)
    cfg.gaussians = {"num_points": 48}
    cfg.export = ExportConfig(mesh_resolution=16, turntable_frames=2, turntable_size=16, views_size=16, eval_views=4)
    return cfg


@pytest.fixture
def count_loads(monkeypatch):
    calls = []
    real = Prior.load.__func__

    def counting(cls, *a, **k):
        calls.append(a[0] if a else k.get("path_or_id"))
        return real(cls, *a, **k)

    monkeypatch.setattr(Prior, "load", classmethod(counting))
    return calls


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_read_prompts(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("# T3Bench subset\na red cube\n\n  a blue sphere  \n# a green cone\na red cube\n")
    assert read_prompts(f) == ["a red cube", "a blue sphere"]
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(UserError, match="no prompts"):
        read_prompts(tmp_path / "empty.txt")
    with pytest.raises(UserError, match="no such file"):
        read_prompts(tmp_path / "missing.txt")
    f.write_text("# a comment\na cube\n\na red cube\na cube\n")
    assert read_prompts(f) == ["a cube", "a red cube"]
    (tmp_path / "comment.txt").write_text("# only a comment\n\n")
    with pytest.raises(UserError, match="holds no prompts"):
        read_prompts(tmp_path / "comment.txt")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00a cube")
    with pytest.raises(UserError, match="cannot read"):
        read_prompts(tmp_path / "binary.txt")


def test_three_prompts_one_load_a_failure_in_the_middle_and_a_rerun_skips(prior_folder, tmp_path, count_loads):
    prompts = ["a red cube", "a red unicorn", "a blue sphere"]  # "unicorn" is not a word of the world: it fails
    out = tmp_path / "batch"
    seen = []
    result = run_batch(BatchConfig(template(prior_folder), prompts, out=str(out)), on_row=lambda r, d, t: seen.append((d, t)))
    assert count_loads == [prior_folder]  # one load for three prompts
    assert seen == [(1, 3), (2, 3), (3, 3)]
    rows = read(out / "results.csv")
    assert [r["prompt"] for r in rows] == prompts
    assert [r["status"] for r in result["rows"]] == [r["status"] for r in rows]  # the return matches the csv
    assert Path(result["csv_path"]) == out / "results.csv"
    assert [r["status"] for r in rows][::2] == ["ok", "ok"]
    assert rows[1]["status"].startswith("failed: UserError") and "unicorn" in rows[1]["status"]
    for r in rows[::2]:  # each finished prompt has the outputs of a single run
        run = out / r["run_dir"].split("/")[-1]
        assert {"config.yaml", "model.ply", "mesh.glb", "views.png", "metrics.json"} <= {p.name for p in run.iterdir()}
        assert json.loads((run / "metrics.json").read_text())["prompt"] == r["prompt"]
        assert float(r["seconds"]) > 0 and r["psnr"] != ""
    summary = (out / "summary.md").read_text()
    assert "2 finished" in summary and "1 failed" in summary and "a red unicorn" in summary
    stamps = {r["prompt"]: (out / r["run_dir"].split("/")[-1] / "metrics.json").stat().st_mtime_ns for r in rows[::2]}

    count_loads.clear()
    again = run_batch(BatchConfig(template(prior_folder), prompts, out=str(out)))
    assert [r["status"] for r in again["rows"]][::2] == ["done before", "done before"]
    assert again["rows"][1]["status"].startswith("failed")  # retried, fails again
    assert count_loads == [prior_folder]  # loaded only for the prompt that had no result
    for r in again["rows"][::2]:
        assert (out / r["run_dir"].split("/")[-1] / "metrics.json").stat().st_mtime_ns == stamps[r["prompt"]]
    assert [r["psnr"] for r in read(out / "results.csv")] == [r["psnr"] for r in rows]

    count_loads.clear()
    done = run_batch(BatchConfig(template(prior_folder), [p for p in prompts if "unicorn" not in p], out=str(out)))
    assert [r["status"] for r in done["rows"]] == ["done before"] * 2 and count_loads == []  # nothing to run: no load


def test_changed_settings_in_the_same_folder_are_refused(prior_folder, tmp_path):
    out = tmp_path / "batch"
    run_batch(BatchConfig(template(prior_folder), ["a red cube"], out=str(out)))
    with pytest.raises(UserError, match="other settings"):
        run_batch(BatchConfig(template(prior_folder, steps=3), ["a red cube"], out=str(out)))


def test_lora_adapters_do_not_leak_between_runs_on_a_shared_prior(prior_folder, tmp_path):
    """lods-lora then vsd on one loaded prior: no adapter is left behind, and the vsd run equals one on a fresh prior."""
    prior = Prior.load(prior_folder)
    first = plan_batch(BatchConfig(template(prior_folder, "lods-lora"), ["a red cube"], out=str(tmp_path / "a")))[0]
    second = plan_batch(BatchConfig(template(prior_folder, "vsd"), ["a blue sphere"], out=str(tmp_path / "b")))[0]
    assert run_prompt(first, prior)["status"] == "ok"
    assert lora.adapter_names(prior.unet) == []
    assert run_prompt(second, prior)["status"] == "ok"
    assert lora.adapter_names(prior.unet) == []
    alone = template(prior_folder, "vsd")
    alone.prompt, alone.out = "a blue sphere", str(tmp_path / "alone")
    run_generate(alone)
    shared, _ = load_checkpoint(tmp_path / "b" / "a-blue-sphere" / "checkpoints" / "last.safetensors")
    fresh, _ = load_checkpoint(tmp_path / "alone" / "checkpoints" / "last.safetensors")
    assert shared.keys() == fresh.keys()
    for k in fresh:
        assert torch.equal(shared[k], fresh[k]), k


def test_bad_batch_settings(prior_folder, tmp_path):
    with pytest.raises(UserError, match="backend"):
        run_batch(BatchConfig(template(prior_folder), ["a red cube"], out=str(tmp_path / "x"), backend="slurm"))
    with pytest.raises(UserError, match="nothing answers"):
        run_batch(BatchConfig(template(prior_folder), ["a red cube"], out=str(tmp_path / "x"), backend="ray",
                              ray_address="127.0.0.1:9"))
    with pytest.raises(UserError, match="needs --backend ray"):
        run_batch(BatchConfig(template(prior_folder), ["a red cube"], out=str(tmp_path / "x"), ray_address="auto"))
    with pytest.raises(UserError, match="workers"):
        run_batch(BatchConfig(template(prior_folder), ["a red cube"], out=str(tmp_path / "x"), workers=0))
    assert not (tmp_path / "x").exists()


def test_ray_backend_without_ray_is_one_clear_error(prior_folder, tmp_path, monkeypatch):
    import sys

    from lods.bench.config import BenchConfig
    from lods.bench.quality import run_bench

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(UserError, match=r"lods\[ray\]"):
        run_batch(BatchConfig(template(prior_folder), ["a red cube"], out=str(tmp_path / "x"), backend="ray"))
    with pytest.raises(UserError, match=r"lods\[ray\]"):
        run_bench(BenchConfig(prior=prior_folder, out=str(tmp_path / "y"), backend="ray"))
    with pytest.raises(UserError, match="needs --backend ray"):
        run_bench(BenchConfig(prior=prior_folder, out=str(tmp_path / "y"), ray_address="auto"))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_cli_prompts_with_two_workers(prior_folder, tmp_path):
    from typer.testing import CliRunner

    from lods.cli import app

    f = tmp_path / "prompts.txt"
    f.write_text("# two prompts\na red cube\na green cone\n")
    out = tmp_path / "cli"
    args = ["generate", "--prompts", str(f), "--guidance", "sds", "--prior", prior_folder, "--steps", "2", "--out", str(out),
            "--workers", "2", "--set", "render_size=16", "--set", "gaussians.num_points=48", "--set", "export.mesh_resolution=16",
            "--set", "export.turntable_frames=2", "--set", "export.views_size=16", "--set", "export.eval_views=4", "--quiet"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "2 of 2 prompts finished" in res.output
    assert [r["status"] for r in read(out / "results.csv")] == ["ok", "ok"]
    assert "--workers 2" in (out / "summary.md").read_text()
    both = CliRunner().invoke(app, ["generate", "a red cube", "--prompts", str(f)])
    assert both.exit_code != 0 and "either a PROMPT or --prompts" in str(both.exception)
