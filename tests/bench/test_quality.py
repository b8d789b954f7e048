"""The quality benchmark, the CFG sweep and the suites, on a tiny random prior (2 prompts, 2 steps, 16² renders)."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lods.errors import UserError
from lods.bench.cfg import cfg_bench_config
from lods.bench.config import BenchConfig
from lods.bench.quality import run_bench
from lods.bench.results import COLUMNS
from lods.bench.suites import load_suite, slugify, t3bench_suite, unique_slugs, world_suite
from lods.bench.t3bench import imagereward_message, imagereward_missing
from lods.priors.tiny_sd import build_tiny_sd, build_tiny_world_prior
from lods.world.scene import parse_prompt
from lods.world.shapes import SHAPES

TINY_EXPORT = {"mesh_resolution": 16, "turntable_frames": 2, "turntable_size": 16, "views_size": 16, "eval_views": 4}
REQUIRED = ["method", "backbone", "seed", "category", "prompt", "psnr", "ssim", "iou", "r_at_1", "recognized_views",
            "saturation_error", "seconds"]


@pytest.fixture(scope="module")
def world_prior(tmp_path_factory):
    return str(build_tiny_world_prior(tmp_path_factory.mktemp("world") / "prior"))


@pytest.fixture(scope="module")
def sd_prior(tmp_path_factory):
    return str(build_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd", latent=True))


def tiny(prior, out, **kw):
    base = dict(prior=prior, methods=["sds", "lods-embedding"], seeds=1, prompts_per_category=1,
                categories=["single", "multi"], steps=2, render_size=16, num_points=48, export=dict(TINY_EXPORT),
                out=str(out), view_grid_prompts=1)
    base.update(kw)
    return BenchConfig(**base)


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------------------------- suites
def test_world_suite_is_deterministic_balanced_and_valid():
    suite = world_suite(10)
    assert suite == world_suite(10)
    assert [s.category for s in suite] == ["single"] * 10 + ["surroundings"] * 10 + ["multi"] * 10
    for s in suite:
        scene, view = parse_prompt(s.prompt)
        assert scene.category == s.category and view is None
    assert len({s.prompt for s in suite}) == 30
    singles = [parse_prompt(s.prompt)[0].objects[0] for s in suite if s.category == "single"]
    assert {o.shape for o in singles} == set(SHAPES)  # balanced: every shape among 10 singles
    assert len({o.color for o in singles}) == 8
    assert world_suite(2, ["surr"]) == [s for s in world_suite(2) if s.category == "surroundings"]
    with pytest.raises(UserError):
        world_suite(0)
    with pytest.raises(UserError):
        load_suite("world", 2, ["bogus"])


def test_t3bench_suite_has_the_300_prompts():
    suite = t3bench_suite()
    assert len(suite) == 300
    assert [sum(s.category == c for s in suite) for c in ("single", "surroundings", "multi")] == [100, 100, 100]
    assert suite[0].prompt == "A cactus with pink flowers"
    assert len(t3bench_suite(3, "multi")) == 3
    slugs = unique_slugs([s.prompt for s in suite])
    assert len(set(slugs.values())) == 300
    assert slugify("A cactus, pink!") == "a-cactus-pink"


# ---------------------------------------------------------------------------------------------- quality
def test_quality_bench_writes_results_summary_plots_and_resumes(world_prior, tmp_path):
    out = tmp_path / "bench"
    result = run_bench(tiny(world_prior, out, command="lods bench quality --test"))
    rows = read(out / "results.csv")
    assert list(rows[0].keys()) == COLUMNS and set(REQUIRED) <= set(rows[0])
    assert len(rows) == 4  # 2 methods × 2 prompts × 1 seed
    assert {r["method"] for r in rows} == {"sds", "lods-embedding"}
    assert {r["category"] for r in rows} == {"single", "multi"}
    for r in rows:
        assert r["status"] == "ok"
        assert float(r["psnr"]) > 0 and 0 <= float(r["iou"]) <= 1 and float(r["seconds"]) > 0
        assert r["recognized_views"] != "" and int(r["n_views"]) == 4
        assert (out / "runs" / f"{r['method']}-gs-s0" / slugify(r["prompt"]) / "metrics.json").exists()
    summary = (out / "summary.md").read_text()
    for text in ("## Overall", "## Category: single", "## Category: multi", "lods bench quality --test", "Hardware:",
                 "PSNR", "IoU", "R@1", "saturation", "s / asset", "Paired differences against SDS"):
        assert text in summary
    for name in ("psnr.png", "iou.png", "r_at_1.png", "saturation_error.png", "seconds.png"):
        assert (out / "plots" / name).stat().st_size > 0
    assert len(list((out / "plots").glob("views_*.png"))) == 2
    assert len(result["rows"]) == 4

    # rerun: finished runs are skipped (not recomputed), an unfinished one (checkpoint, no metrics) is resumed
    done = out / "runs" / "sds-gs-s0" / slugify(rows[0]["prompt"]) / "metrics.json"
    stamp = done.stat().st_mtime_ns
    unfinished = out / "runs" / "lods-embedding-gs-s0" / slugify(rows[0]["prompt"])
    (unfinished / "metrics.json").unlink()
    run_bench(tiny(world_prior, out))
    again = {(r["method"], r["prompt"]): r for r in read(out / "results.csv")}
    assert done.stat().st_mtime_ns == stamp
    assert again[("sds", rows[0]["prompt"])]["status"] == "done before"
    resumed = again[("lods-embedding", rows[0]["prompt"])]
    assert resumed["status"] == "resumed"
    assert (unfinished / "metrics.json").exists()
    # a run resumed at its last step keeps the time of all its steps (it counted none before 2026-12-04)
    m = json.loads((unfinished / "metrics.json").read_text())
    assert m["resumed_from_step"] == m["steps"] and m["seconds_per_step"] == pytest.approx(m["seconds"] / m["steps"])
    assert float(resumed["seconds"]) == pytest.approx(m["seconds"], rel=1e-4) and m["seconds"] > 0  # csv: 6 digits
    assert sum(r["status"] == "done before" for r in again.values()) == 3

    # other settings into the same folder: refused, not silently mixed
    with pytest.raises(UserError, match="other settings"):
        run_bench(tiny(world_prior, out, steps=3))


def test_quality_bench_with_two_worker_processes(world_prior, tmp_path):
    out = tmp_path / "bench"
    run_bench(tiny(world_prior, out, methods=["sds"], workers=2))
    rows = read(out / "results.csv")
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert [r["category"] for r in rows] == ["single", "multi"]  # the suite's order, whatever finished first


def test_a_failed_run_is_recorded_and_the_others_go_on(world_prior, tmp_path):
    out = tmp_path / "bench"
    bc = tiny(world_prior, out, methods=["sds"])
    # a file where the run folder's parent should be: that run fails, the other one finishes
    (out / "runs").mkdir(parents=True)
    (out / "runs" / "sds-gs-s0").mkdir()
    slug = slugify(world_suite(1, ["single"])[0].prompt)
    (out / "runs" / "sds-gs-s0" / slug).write_text("not a folder")
    run_bench(bc)
    rows = read(out / "results.csv")
    assert rows[0]["status"].startswith("failed") and rows[1]["status"] == "ok"
    assert "Failed runs" in (out / "summary.md").read_text()


def test_cfg_sweep_writes_a_cfg_column_and_curves(world_prior, tmp_path):
    out = tmp_path / "cfg"
    bc = cfg_bench_config(prior=world_prior, prompts_per_category=1, seeds=1, steps=2, cfg_scales=[30.0, 1e6],
                          render_size=16, num_points=48, export=dict(TINY_EXPORT), out=str(out))
    assert bc.categories == ["single"] and bc.methods == ["sds", "lods-embedding"]
    run_bench(bc)
    rows = read(out / "results.csv")
    assert len(rows) == 4
    assert sorted({float(r["cfg"]) for r in rows}) == [30.0, 1e6]
    assert {r["run_dir"].split(os.sep)[-2] for r in rows} == {
        "sds-gs-cfg30-s0", "sds-gs-cfginf-s0", "lods-embedding-gs-cfg30-s0", "lods-embedding-gs-cfginf-s0"}
    summary = (out / "summary.md").read_text()
    assert "| CFG |" in summary and "inf" in summary
    assert (out / "plots" / "cfg_psnr.png").exists() and (out / "plots" / "psnr.png").exists()


# ---------------------------------------------------------------------------------------------- T3Bench
def test_t3bench_needs_an_open_vocabulary_prior(world_prior, tmp_path):
    with pytest.raises(UserError, match="needs --prior"):
        run_bench(BenchConfig(suite="t3bench", out=str(tmp_path / "a")))
    with pytest.raises(UserError, match="closed vocabulary"):
        run_bench(BenchConfig(suite="t3bench", prior=world_prior, out=str(tmp_path / "b")))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_t3bench_without_imagereward_says_what_is_missing(sd_prior, tmp_path):
    out = tmp_path / "t3"
    weights = tmp_path / "no-weights"
    missing = imagereward_missing(str(weights))
    assert any("ImageReward.pt" in m for m in missing) and any("med_config.json" in m for m in missing)
    messages = []
    bc = tiny(sd_prior, out, suite="t3bench", preset="fast", device="cpu", methods=["sds"], categories=["single"],
              imagereward_dir=str(weights))
    run_bench(bc, message=messages.append)
    assert messages == [imagereward_message(missing)]
    assert "ImageReward.pt" in messages[0] and "rerun the same command" in messages[0]
    rows = read(out / "results.csv")
    assert len(rows) == 1 and rows[0]["prompt"] == "A cactus with pink flowers"
    assert rows[0]["status"] == "ok" and rows[0]["imagereward"] == "" and rows[0]["psnr"] == ""
    assert float(rows[0]["seconds"]) > 0 and rows[0]["loss_distill"] != ""
    summary = (out / "summary.md").read_text()
    assert "ImageReward scores were not computed" in summary and "s / asset" in summary


def test_cli_t3bench_without_prior_is_one_line_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lods.cli", "bench", "quality", "--suite", "t3bench", "--out",
                           str(tmp_path / "x")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "needs --prior" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_cli_quality_runs_and_records_the_command(world_prior, tmp_path):
    from typer.testing import CliRunner

    from lods.cli import app

    out = tmp_path / "q"
    res = CliRunner().invoke(app, ["bench", "quality", "--prior", world_prior, "--methods", "sds", "--seeds", "1",
                                   "--prompts-per-category", "1", "--categories", "single", "--steps", "1",
                                   "--render-size", "16", "--num-points", "32", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "results.csv" in res.output
    summary = (out / "summary.md").read_text()
    assert "lods bench quality --suite world --methods sds" in summary and "--steps 1" in summary
    assert json.loads((out / "runs" / "sds-gs-s0" / slugify(world_suite(1, ["single"])[0].prompt) / "metrics.json").read_text())


def test_t3bench_scores_with_imagereward_when_present(sd_prior, tmp_path, monkeypatch):
    """A stand-in ImageReward package (same interface) and weight files: each finished run gets a score, cached."""
    pkg = tmp_path / "site" / "ImageReward"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "ImageReward.py").write_text(
        "import torch\n"
        "class ImageReward(torch.nn.Module):\n"
        "    def __init__(self, med_config, device='cpu'):\n"
        "        super().__init__()\n"
        "        assert open(med_config).read() == '{}'\n"
        "    def score(self, prompt, paths):\n"
        "        return [0.25 * i for i, _ in enumerate(paths)]\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    weights = tmp_path / "weights"
    weights.mkdir()
    import torch

    torch.save({}, weights / "ImageReward.pt")
    (weights / "med_config.json").write_text("{}")
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: str(weights / "vocab.txt"))
    assert imagereward_missing(str(weights)) == []
    out = tmp_path / "t3"
    bc = tiny(sd_prior, out, suite="t3bench", preset="fast", device="cpu", methods=["sds"], categories=["single"],
              imagereward_dir=str(weights))
    run_bench(bc)
    (row,) = read(out / "results.csv")
    assert float(row["imagereward"]) == pytest.approx(0.25 * (0 + 1 + 2 + 3) / 4)  # mean over the 4 views
    cached = json.loads((Path(row["run_dir"]) / "imagereward.json").read_text())
    assert cached["imagereward"] == pytest.approx(float(row["imagereward"]))
    assert "ImageReward ↑" in (out / "summary.md").read_text()
