"""The guidance-gap benchmark on a tiny random world prior: 2 grid entries × 2 prompts × 2 seeds × 3 steps in 2D,
one tiny 3D job; files, columns, resuming."""

import csv
import json
from pathlib import Path

import pytest

from lods.errors import UserError
from lods.bench.gap import (
    COLUMNS,
    DEFAULT_GRID,
    DEFAULT_PROMPTS,
    GapConfig,
    headline_prompts,
    parse_grid,
    prompt_kind,
    run_gap,
)

from .conftest import read

TINY_EXPORT = {"mesh_resolution": 16, "turntable_frames": 2, "turntable_size": 16, "views_size": 16, "eval_views": 4}


def test_grid_parsing():
    grid = parse_grid("sds@7.5, csd ,lods-embedding+shared_draw@1000,lods-lora@inf,vsd")
    assert [e.label for e in grid] == ["sds@7.5", "csd", "lods-embedding+shared_draw@1000", "lods-lora@inf", "vsd"]
    assert grid[0].scale == 7.5 and grid[1].scale is None and grid[4].scale is None
    assert grid[2].guidance == "lods-embedding" and grid[3].scale == 1e6
    assert len(parse_grid(list(DEFAULT_GRID))) == 9
    for bad, match in [("sds@-1", "positive"), ("csd@7.5", "no CFG scale"), ("bogus@7", "unknown guidance"),
                       ("sds@x", "not a scale"), ("sds@7.5,sds@7.5", "twice"), ("", "empty")]:
        with pytest.raises(UserError, match=match):
            parse_grid(bad)


def test_prompt_sets():
    kinds = [prompt_kind(p)[0] for p in DEFAULT_PROMPTS]
    assert len(DEFAULT_PROMPTS) >= 12 and kinds.count("ambiguous") == kinds.count("specified")
    head = headline_prompts()
    assert len(head) >= 30 and head == headline_prompts()
    kinds = [prompt_kind(p) for p in head]
    assert {k for k, _ in kinds} == {"ambiguous", "specified"}
    assert {c for _, c in kinds} == {"single", "surroundings", "multi"}


def test_learned_loss_reads_either_key():
    from lods.bench.gap_jobs import learned_loss

    assert learned_loss([{"loss_prior": 1.0}, {"loss_prior": 3.0}]) == 2.0
    assert learned_loss([{"loss_learned": 0.5}]) == 0.5
    assert learned_loss([], {"loss_prior": 0.25}) == 0.25
    assert learned_loss([{"loss_sds": 1.0}], {"loss_sds": 1.0}) is None


def test_bad_settings_fail_before_running(world_prior, tmp_path):
    base = dict(prior=world_prior, out=str(tmp_path / "o"), steps=1, seeds=1)
    for kw, match in [(dict(dims="4d"), "2d or 3d"), (dict(prompts=["a DSLR photo"]), "caption of the world"),
                      (dict(prompts=["an object to the left of an object"]), "completions"),
                      (dict(seeds=0), "seeds"), (dict(baseline="sds@1"), "baseline"),
                      (dict(prior=str(tmp_path)), "world prior"), (dict(image_lr=0.0), "image-lr must be positive"),
                      (dict(dims="3d", image_lr=1e-2), "needs --dims 2d")]:
        with pytest.raises(UserError, match=match):
            run_gap(GapConfig(**{**base, **kw, "prompts": kw.get("prompts", ["a cube"])}))
    assert not (tmp_path / "o").exists()


def test_tiny_2d_benchmark_files_columns_and_resume(world_prior, tmp_path):
    out = tmp_path / "gap"
    gc = GapConfig(grid=parse_grid("sds@30,lods-embedding@1000"), prompts=["a cube", "a red cube"], seeds=2, steps=3,
                   prior=world_prior, out=str(out), command="lods bench gap --steps 3")
    result = run_gap(gc)
    rows = read(out / "results.csv")
    assert list(rows[0]) == COLUMNS and len(rows) == 8
    assert all(r["status"] == "ok" for r in rows)
    by = {(r["method"], r["seed"], r["prompt"]): r for r in rows}
    cube = by[("sds@30", "0", "a cube")]
    assert cube["kind"] == "ambiguous" and cube["n_completions"] == "8" and cube["nearest_completion"].endswith(" cube")
    assert cube["dims"] == "2d" and cube["backbone"] == "2d" and float(cube["scale"]) == 30.0 and cube["steps"] == "3"
    for key in ("psnr", "ssim", "saturation", "saturation_error", "realism", "judge_color_confidence",
                "judge_shape_confidence", "judge_confidence", "seconds"):
        assert cube[key] != "", key
    assert cube["iou"] == "" and cube["learned_loss"] == ""  # 2D has no alpha; SDS has no learned branch
    assert float(cube["judge_confidence"]) == pytest.approx(
        float(cube["judge_color_confidence"]) * float(cube["judge_shape_confidence"]), rel=1e-4)
    lods = by[("lods-embedding@1000", "1", "a red cube")]
    assert lods["kind"] == "specified" and lods["n_completions"] == "1" and lods["nearest_completion"] == "a red cube"
    assert float(lods["learned_loss"]) > 0 and float(lods["learned_loss_clean"]) > 0
    assert float(lods["learned_fit"]) == pytest.approx(float(lods["learned_loss"]) / float(lods["learned_loss_clean"]), rel=1e-4)
    summary = (out / "summary.md").read_text()
    assert "lods bench gap --steps 3" in summary and "Hardware:" in summary and "Prior:" in summary
    for heading in ("## Ambiguous prompts", "## Specified prompts", "## Paired differences against sds@30"):
        assert heading in summary
    names = {p.name for p in (out / "plots").iterdir()}
    assert {"saturation_vs_scale.png", "realism_vs_scale.png", "judge_confidence_vs_scale.png", "grid_a-cube.png"} <= names
    assert len(result["plots"]) == 4
    gap = json.loads((out / "runs" / "2d" / "sds-s30-seed0" / "a-cube" / "gap.json").read_text())
    assert gap["nearest_completion"] == cube["nearest_completion"]

    # a rerun skips every finished job and gives the same scores
    again = run_gap(gc)
    assert [r["status"] for r in again["rows"]] == ["done before"] * 8
    assert read(out / "results.csv") == [{**r, "status": "done before"} for r in rows]
    # a job whose scoring was lost is scored again, not rerun
    (out / "runs" / "2d" / "sds-s30-seed0" / "a-cube" / "gap.json").unlink()
    third = run_gap(gc)
    assert sorted(r["status"] for r in third["rows"]) == ["done before"] * 7 + ["scored"]
    # other settings in the same folder are refused, scored (gap.json) or not (distill2d's config.yaml)
    with pytest.raises(UserError, match="other settings"):
        run_gap(GapConfig(**{**gc.__dict__, "steps": 4}))
    (out / "runs" / "2d" / "sds-s30-seed0" / "a-cube" / "gap.json").unlink()
    with pytest.raises(UserError, match=r"a-cube holds a run made with other settings \(steps"):
        run_gap(GapConfig(**{**gc.__dict__, "steps": 4}))
    # a run scored before a guidance setting existed, rerun with that setting at its default: still done
    gap_file = out / "runs" / "2d" / "sds-s30-seed1" / "a-cube" / "gap.json"
    data = json.loads(gap_file.read_text())
    del data["settings"]["guidance_config"]["learned_draws"]
    gap_file.write_text(json.dumps(data))
    rows = {r["run_dir"]: r["status"] for r in run_gap(gc)["rows"]}
    assert rows[str(gap_file.parent)] == "done before"


def test_tiny_3d_job(world_prior, tmp_path):
    out = tmp_path / "gap3d"
    gc = GapConfig(grid=parse_grid("lods-embedding@1000"), dims="3d", prompts=["a cube"], seeds=1, steps=2,
                   render_size=16, num_points=48, export=dict(TINY_EXPORT), prior=world_prior, out=str(out))
    run_gap(gc)
    (row,) = read(out / "results.csv")
    assert row["status"] == "ok" and row["backbone"] == "gs" and row["dims"] == "3d"
    assert row["n_completions"] == "8" and row["n_views"] == "4" and float(row["scale"]) == 1000.0
    for key in ("psnr", "iou", "saturation", "saturation_error", "realism", "judge_confidence", "recognized_views",
                "learned_loss", "learned_loss_clean", "learned_fit", "seconds"):
        assert row[key] != "", key
    assert (out / "plots" / "grid_a-cube.png").exists()
    assert [r["status"] for r in run_gap(gc)["rows"]] == ["done before"]

    # the time column is the run's own record (every step, across resumes), not a copy in gap.json that may be wrong
    metrics = json.loads((Path(row["run_dir"]) / "metrics.json").read_text())
    gap_file = Path(row["run_dir"]) / "gap.json"
    gap_file.write_text(json.dumps({**json.loads(gap_file.read_text()), "seconds": float("nan")}))
    (again,) = run_gap(gc)["rows"]
    assert float(again["seconds"]) == pytest.approx(metrics["seconds"], rel=1e-4) and metrics["seconds"] > 0


def test_the_prompt_sets_use_only_words_the_embedded_prior_reads():
    from lods.bench.gap import DEFAULT_PROMPTS, check_vocabulary, headline_prompts

    check_vocabulary(None, list(DEFAULT_PROMPTS) + headline_prompts())  # the shipped prior's own vocabulary
    with pytest.raises(UserError, match="does not read"):
        check_vocabulary(None, ["an orange cone on a mat"])


def test_report_only_reports_the_finished_runs_and_starts_none(world_prior, tmp_path):
    out = tmp_path / "gap"
    gc = GapConfig(grid=parse_grid("sds@30"), prompts=["a cube"], seeds=1, steps=2, prior=world_prior, out=str(out))
    run_gap(gc)
    partial = run_gap(GapConfig(**{**gc.__dict__, "seeds": 2, "report_only": True}))
    assert [(r["seed"], r["status"]) for r in partial["rows"]] == [(0, "done before"), (1, "not run")]
    assert not (out / "runs" / "2d" / "sds-s30-seed1").exists()  # nothing was started
    rows = read(out / "results.csv")
    assert [r["status"] for r in rows] == ["done before", "not run"] and rows[0]["psnr"] != "" and rows[1]["psnr"] == ""
    summary = (out / "summary.md").read_text()
    assert "1 not run yet: a partial report" in summary and "| sds@30 | 2d | 1 |" in summary


def test_restore_from_merges_several_csvs_from_the_command_line(world_prior, tmp_path, monkeypatch):
    """`--restore-from A --restore-from B`: the finished rows of both count as done; the first csv wins a job both have."""
    import sys

    from lods.cli import main

    gc = GapConfig(grid=parse_grid("sds@30"), prompts=["a cube"], seeds=1, steps=2, prior=world_prior,
                   out=str(tmp_path / "seed0"))
    run_gap(gc)  # seed 0 only
    run_gap(GapConfig(**{**gc.__dict__, "seeds": 2, "out": str(tmp_path / "seeds01")}))  # seeds 0 and 1
    first, second = tmp_path / "seed0" / "results.csv", tmp_path / "seeds01" / "results.csv"
    merged = tmp_path / "merged"
    monkeypatch.setattr(sys, "argv", ["lods", "bench", "gap", "--dims", "2d", "--grid", "sds@30", "--prompts",
                                      str(tmp_path / "prompts.txt"), "--seeds", "3", "--steps", "2", "--prior",
                                      world_prior, "--out", str(merged), "--report-only", "--quiet",
                                      "--restore-from", str(first), "--restore-from", str(second)])
    (tmp_path / "prompts.txt").write_text("a cube\n")
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code in (0, None)
    assert [(r["seed"], r["status"]) for r in read(merged / "results.csv")] == \
        [("0", "done before"), ("1", "done before"), ("2", "not run")]
    sources = [json.loads((merged / "runs" / "2d" / f"sds-s30-seed{seed}" / "a-cube" / "gap.json").read_text())
               ["restored_from"] for seed in (0, 1)]
    assert sources == [str(first), str(second)]
    assert f"--restore-from {first} --restore-from {second}" in (merged / "summary.md").read_text()
    # an unreadable csv among them: one line, exit 2, and nothing restored from the good one either
    other = tmp_path / "other"
    argv = [a if a != str(merged) else str(other) for a in sys.argv]
    monkeypatch.setattr(sys, "argv", argv[:-1] + [str(tmp_path / "missing.csv")])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    assert not list(other.glob("runs/**/gap.json"))


def test_restore_from_a_csv_continues_on_a_new_folder(world_prior, tmp_path):
    first = tmp_path / "first"
    gc = GapConfig(grid=parse_grid("sds@30"), prompts=["a cube"], seeds=1, steps=2, prior=world_prior, out=str(first))
    run_gap(gc)
    (old,) = read(first / "results.csv")
    # a new machine: only the csv is left; seed 0 is restored from it, seed 1 runs
    second = tmp_path / "second"
    result = run_gap(GapConfig(**{**gc.__dict__, "seeds": 2, "out": str(second),
                                  "restore_from": str(first / "results.csv")}))
    assert [(r["seed"], r["status"]) for r in result["rows"]] == [(0, "done before"), (1, "ok")]
    restored = read(second / "results.csv")[0]
    assert {k: restored[k] for k in COLUMNS if k not in ("status", "run_dir")} == \
        {k: old[k] for k in COLUMNS if k not in ("status", "run_dir")}
    gap = json.loads((second / "runs" / "2d" / "sds-s30-seed0" / "a-cube" / "gap.json").read_text())
    assert gap["restored_from"] == str(first / "results.csv")
    assert restored["run_dir"] == old["run_dir"]  # the row points where the run's files are
    # the same folder again, with or without --restore-from: the restored job stays done, nothing is refused
    for restore_from in (str(first / "results.csv"), None):
        again = run_gap(GapConfig(**{**gc.__dict__, "seeds": 2, "out": str(second), "restore_from": restore_from}))
        assert [r["status"] for r in again["rows"]] == ["done before", "done before"]
    # a row of other settings (steps) is not taken: the job runs
    third = run_gap(GapConfig(**{**gc.__dict__, "steps": 3, "out": str(tmp_path / "third"),
                                 "restore_from": str(first / "results.csv")}))
    assert [r["status"] for r in third["rows"]] == ["ok"]
    with pytest.raises(UserError, match="not a results.csv"):
        (tmp_path / "other.csv").write_text("a,b\n1,2\n")
        run_gap(GapConfig(**{**gc.__dict__, "out": str(tmp_path / "fourth"), "restore_from": str(tmp_path / "other.csv")}))
    with pytest.raises(UserError, match="cannot read --restore-from"):
        run_gap(GapConfig(**{**gc.__dict__, "out": str(tmp_path / "fifth"), "restore_from": str(tmp_path / "none.csv")}))


def test_the_image_learning_rate_is_a_setting_of_a_2d_run(world_prior, tmp_path):
    base = GapConfig(grid=parse_grid("sds@30"), prompts=["a cube"], seeds=1, steps=2, prior=world_prior,
                     out=str(tmp_path / "default"))
    run_gap(base)
    (default_row,) = read(tmp_path / "default" / "results.csv")
    assert float(default_row["image_lr"]) == 3e-2  # distill2d's default
    slow = GapConfig(**{**base.__dict__, "image_lr": 1e-2, "out": str(tmp_path / "slow")})
    run_gap(slow)
    (slow_row,) = read(tmp_path / "slow" / "results.csv")
    assert float(slow_row["image_lr"]) == 1e-2
    assert "lr: 0.01" in (Path(slow_row["run_dir"]) / "config.yaml").read_text()
    assert slow_row["saturation"] != default_row["saturation"]  # the setting reached the run
    # the folder of the slow runs refuses the default rate, scored or not
    with pytest.raises(UserError, match=r"other settings \(lr: 0.01 -> 0.03"):
        run_gap(GapConfig(**{**slow.__dict__, "image_lr": None}))
    # restoring takes only rows of the same rate; a csv from before the column ran the default
    for restore_from, image_lr, status in ((tmp_path / "slow" / "results.csv", None, "ok"),
                                           (tmp_path / "slow" / "results.csv", 1e-2, "done before"),
                                           (tmp_path / "default" / "results.csv", 1e-2, "ok")):
        out = tmp_path / f"restore-{len(list(tmp_path.iterdir()))}"
        rows = run_gap(GapConfig(**{**base.__dict__, "image_lr": image_lr, "out": str(out),
                                    "restore_from": str(restore_from)}))["rows"]
        assert [r["status"] for r in rows] == [status]
    old_csv = tmp_path / "old.csv"
    with old_csv.open("w", newline="") as f:
        writer = csv.DictWriter(f, [c for c in COLUMNS if c != "image_lr"])
        writer.writeheader()
        writer.writerow({k: v for k, v in default_row.items() if k != "image_lr"})
    rows = run_gap(GapConfig(**{**base.__dict__, "out": str(tmp_path / "from-old"), "restore_from": str(old_csv)}))["rows"]
    assert [r["status"] for r in rows] == ["done before"]
    # a run scored before the setting was recorded, rerun at the default rate: still done
    gap_file = Path(default_row["run_dir"]) / "gap.json"
    data = json.loads(gap_file.read_text())
    del data["settings"]["lr"]
    gap_file.write_text(json.dumps(data))
    assert [r["status"] for r in run_gap(base)["rows"]] == ["done before"]


def test_results_csv_is_current_after_every_run(world_prior, tmp_path):
    out = tmp_path / "gap"
    gc = GapConfig(grid=parse_grid("sds@30"), prompts=["a cube"], seeds=2, steps=2, prior=world_prior, out=str(out))
    seen = []

    def on_row(row, done, total):  # called once the csv is written: what a kill at this moment would leave
        seen.append([(r["seed"], r["status"]) for r in read(out / "results.csv")])

    run_gap(gc, on_row)
    assert seen == [[("0", "ok"), ("1", "not run")], [("0", "ok"), ("1", "ok")]]
    # that partial csv is enough for a new machine to continue
    restored = run_gap(GapConfig(**{**gc.__dict__, "out": str(tmp_path / "new"), "restore_from": str(out / "results.csv")}))
    assert [r["status"] for r in restored["rows"]] == ["done before", "done before"]
