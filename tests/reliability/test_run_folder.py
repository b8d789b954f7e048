"""The run folder: one writer at a time, resume checks, copies and moves, starting over, temp files, permissions."""

import json
import os
import shutil
import stat
import time


from conftest import snapshot, spawn, tiny


def copy_of(finished, tmp_path, name="run"):
    dst = tmp_path / name
    shutil.copytree(finished, dst)
    return dst


def test_two_runs_on_one_folder(prior, tmp_path, lods):
    out = tmp_path / "run"
    first = spawn(*tiny(prior, out, "--steps", 40))
    t0 = time.time()
    while not (out / "run.json").exists() and first.poll() is None and time.time() - t0 < 60:
        time.sleep(0.02)
    code, _, err = lods(*tiny(prior, out, "--steps", 4, prompt="a blue sphere"))
    assert code == 2 and len(err) == 1 and "in use by another lods process" in err[0], err
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    cfg = (out / "config.yaml").read_text()
    assert "a red cube" in cfg and "blue sphere" not in cfg
    assert json.loads((out / "metrics.json").read_text())["prompt"] == "a red cube"
    # after the first one ends, a new run on the folder is refused too (it holds a finished run)
    code, _, err = lods(*tiny(prior, out, prompt="a blue sphere"))
    assert code == 2 and len(err) == 1 and "already holds a run" in err[0]


def test_stale_lock_of_a_dead_process_is_taken_over(prior, finished, tmp_path, lods):
    out = copy_of(finished, tmp_path)
    (out / ".lock").write_text("999999\n")  # what kill -9 leaves: a lock file nobody holds
    code, _, err = lods(*tiny(prior, out, "--steps", 8, "--resume"))
    assert code == 0, err
    assert not (out / ".lock").exists()


def test_resume_refuses_contradicting_flags_and_lists_them(prior, finished, tmp_path, lods):
    out = copy_of(finished, tmp_path)
    before = snapshot(out)
    code, _, err = lods("generate", "a blue cube", "--prior", prior, "--out", out, "--resume", "--seed", 3,
                        "--guidance", "sds", "--backbone", "nerf", "--quiet")
    assert code == 2 and len(err) == 1, err
    for needle in ("prompt", "seed", "guidance", "backbone", "only --steps may change"):
        assert needle in err[0]
    assert snapshot(out) == before


def test_resume_with_fewer_steps_than_done_is_refused(prior, finished, tmp_path, lods):
    out = copy_of(finished, tmp_path)
    before = snapshot(out)
    code, _, err = lods(*tiny(prior, out, "--steps", 4, "--resume"))
    assert code == 2 and len(err) == 1 and "already at step 6" in err[0], err
    assert snapshot(out) == before


def test_raising_steps_extends_a_finished_run_and_keeps_its_time(prior, finished, tmp_path, lods):
    out = copy_of(finished, tmp_path)
    seconds_before = json.loads((out / "metrics.json").read_text())["seconds"]
    code, _, err = lods(*tiny(prior, out, "--steps", 8, "--resume"))
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 8 and len(m["history"]) == 8 and m["resumed_from_step"] == 6
    assert m["seconds"] >= seconds_before  # the time before the resume is counted


def test_resume_continues_the_folder_given_not_the_one_recorded(prior, finished, tmp_path, lods):
    original = copy_of(finished, tmp_path, "original")
    copy = copy_of(original, tmp_path, "copy")  # config.yaml in both still names the finished run's folder
    moved = tmp_path / "moved"
    os.rename(copy_of(original, tmp_path, "tomove"), moved)
    before, recorded = snapshot(original), snapshot(finished)
    for folder in (copy, moved):
        code, _, err = lods(*tiny(prior, folder, "--steps", 8, "--resume"))
        assert code == 0, err
        assert json.loads((folder / "metrics.json").read_text())["steps"] == 8
    assert snapshot(original) == before
    assert snapshot(finished) == recorded  # nor the folder named in their config.yaml


def test_a_folder_stopped_before_its_first_checkpoint_starts_over(prior, tmp_path, lods):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("prompt: a red cube\n")  # left by a run killed before its first checkpoint
    (out / ".lock").write_text("999999\n")
    code, _, err = lods(*tiny(prior, out))
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["steps"] == 6


def test_diverged_run_exits_3_and_the_folder_can_be_rerun(prior, tmp_path, lods, monkeypatch):
    import torch

    from lods.scenes.gaussians import GaussianScene

    out = tmp_path / "run"
    real = GaussianScene.render

    def nan_render(self, *a, **k):
        r = real(self, *a, **k)
        r["rgb"] = r["rgb"] * torch.tensor(float("inf"))
        return r

    monkeypatch.setattr(GaussianScene, "render", nan_render)
    code, _, err = lods(*tiny(prior, out))
    assert code == 3 and len(err) == 1 and "at step 0" in err[0], err
    monkeypatch.setattr(GaussianScene, "render", real)
    code, _, err = lods(*tiny(prior, out))
    assert code == 0, err


def test_temp_files_of_a_killed_write_are_removed_and_outputs_are_0644(prior, finished, tmp_path, lods):
    out = copy_of(finished, tmp_path)
    (out / ".turntable.mp4.abcd_123.mp4").write_bytes(b"half a video")
    (out / "checkpoints" / ".last.safetensors.x1y2z3w4.tmp").write_bytes(b"half a checkpoint")
    old = os.umask(0o022)
    try:
        code, _, err = lods(*tiny(prior, out, "--steps", 8, "--resume"))
    finally:
        os.umask(old)
    assert code == 0, err
    assert not [p.name for p in out.rglob(".*")]
    for name in ("checkpoints/last.safetensors", "turntable.mp4", "model.ply", "metrics.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name


def test_image_to_3d_resume_checks_and_extends(prior, tmp_path, lods):
    from PIL import Image

    img = tmp_path / "square.png"
    im = Image.new("RGB", (64, 64), "white")
    im.paste((220, 30, 30), (20, 20, 44, 44))
    im.save(img)
    out = tmp_path / "run"
    base = ("image-to-3d", img, "--prompt", "a red cube", "--prior", prior, "--out", out, "--quiet")
    code, _, err = lods(*base, "--steps", 6)
    assert code == 0, err
    before = snapshot(out)
    code, _, err = lods(*base, "--resume", "--seed", 5)
    assert code == 2 and len(err) == 1 and "seed" in err[0], err
    assert snapshot(out) == before
    code, _, err = lods(*base, "--resume", "--steps", 8)
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["steps"] == 8
