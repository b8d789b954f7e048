"""Every bad input and broken environment: one line on stderr, the documented exit code, earlier results untouched."""

import errno
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from conftest import snapshot, tiny


@pytest.fixture
def work(finished, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(finished, dst)
    return dst


def one_line(code, err, expected_code, *needles):
    assert code == expected_code and len(err) == 1, (code, err)
    assert err[0].startswith("lods: error:") and "Traceback" not in err[0]
    for n in needles:
        assert n in err[0], err[0]


# ---------------------------------------------------------------- the folder
def test_out_naming_a_file_is_bad_input(prior, tmp_path, lods):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    one_line(*lods(*tiny(prior, f))[::2], 2, "is a file")
    assert f.read_text() == "mine"


def test_distill2d_never_deletes_a_generate_run(prior, work, lods):
    before = snapshot(work)
    code, _, err = lods("distill2d", "a red cube", "--prior", prior, "--steps", 1, "--out", work, "--quiet")
    one_line(code, err, 2, "choose another --out")
    assert snapshot(work) == before


def test_distill2d_onto_a_file_leaves_it(prior, tmp_path, lods):
    f = tmp_path / "result"
    f.write_text("mine")
    code, _, err = lods("distill2d", "a red cube", "--prior", prior, "--steps", 1, "--out", f, "--quiet")
    one_line(code, err, 2, "is a file")
    assert f.is_file() and f.read_text() == "mine"


# ---------------------------------------------------------------- numbers
@pytest.mark.parametrize("seed", [10**14, 2**64])
def test_huge_seed(prior, tmp_path, lods, seed):
    code, _, err = lods(*tiny(prior, tmp_path / "run", "--seed", seed))
    one_line(code, err, 2, "--seed")
    assert not (tmp_path / "run").exists()


def test_prior_sample_cfg_nan_writes_nothing(prior, tmp_path, lods):
    png = tmp_path / "grid.png"
    code, _, err = lods("prior", "sample", "a red cube", "--prior", prior, "--cfg", "nan", "--n", 1, "--steps", 2,
                        "--out", png)
    one_line(code, err, 2, "--cfg")
    assert not png.exists()


def test_generate_cfg_nan(prior, tmp_path, lods):
    one_line(*lods(*tiny(prior, tmp_path / "run", "--cfg", "nan"))[::2], 2, "--cfg")


def test_usage_error_is_one_line(lods):
    code, _, err = lods("generate", "a red cube", "--steps", "many")
    one_line(code, err, 2, "--steps", "--help")
    code, _, err = lods("generate", "a red cube", "--no-such-flag")
    one_line(code, err, 2, "no-such-flag")


# ---------------------------------------------------------------- broken files
@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_checkpoint_on_resume_and_eval(prior, work, lods, damage):
    ckpt = work / "checkpoints" / "last.safetensors"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2] if damage == "truncate" else os.urandom(len(data)))
    before = snapshot(work)
    one_line(*lods(*tiny(prior, work, "--steps", 8, "--resume"))[::2], 2, "checkpoint")
    one_line(*lods("eval", work)[::2], 2, "checkpoint")
    assert snapshot(work) == before


@pytest.mark.parametrize("name,text", [("config.yaml", "prompt: [unclosed\n"), ("config.yaml", "- a list\n"),
                                       ("metrics.json", "{not json")])
def test_malformed_files_in_eval(work, lods, name, text):
    (work / name).write_text(text)
    before = snapshot(work)
    one_line(*lods("eval", work)[::2], 2, name)
    assert snapshot(work) == before


def test_eval_warns_on_an_unfinished_run(prior, tmp_path, lods):
    out = tmp_path / "run"
    code, _, err = lods(*tiny(prior, out))
    assert code == 0, err
    cfg = out / "config.yaml"
    cfg.write_text(cfg.read_text().replace("steps: 6", "steps: 60"))
    code, _, err = lods("eval", out)
    assert code == 0 and len(err) == 1 and "warning" in err[0] and "unfinished" in err[0], err


def _png_header_only(path: Path, w: int, h: int) -> None:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_decompression_bomb_image(prior, tmp_path, lods):
    img = tmp_path / "huge.png"
    _png_header_only(img, 20000, 20000)
    code, _, err = lods("image-to-3d", img, "--prior", prior, "--out", tmp_path / "run", "--quiet")
    one_line(code, err, 2, "too large")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- a full disk
def _inject_enospc(monkeypatch, name):
    """Writes of a file called `name` fail as on a full disk (when the atomic write syncs its temp file)."""
    real = os.fsync

    def fsync(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(f".{name}."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_full_disk_during_a_checkpoint_keeps_the_last_one(prior, work, lods, monkeypatch):
    before = snapshot(work)
    _inject_enospc(monkeypatch, "last.safetensors")
    one_line(*lods(*tiny(prior, work, "--steps", 10, "--resume"))[::2], 1, "no space")
    after = snapshot(work)
    for name in ("checkpoints/last.safetensors", "model.ply", "mesh.glb", "metrics.json", "turntable.mp4"):
        assert after[name] == before[name], name
    assert not [p.name for p in work.rglob(".*")]
    monkeypatch.undo()


def test_full_disk_during_export_keeps_the_checkpoint(prior, tmp_path, lods, monkeypatch):
    out = tmp_path / "run"
    _inject_enospc(monkeypatch, "views.png")
    one_line(*lods(*tiny(prior, out))[::2], 1, "no space")
    from lods.utils.io import load_checkpoint

    assert load_checkpoint(out / "checkpoints" / "last.safetensors")[1]["step"] == 6
    monkeypatch.undo()


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_full_tmpfs_during_a_checkpoint(prior, finished, tmp_path, lods):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "1m"):
        pytest.skip("cannot mount a tmpfs here (the injected-ENOSPC tests cover this)")
    try:
        out = disk / "run"
        shutil.copytree(finished, out)
        before = snapshot(out)
        with open(disk / "filler", "wb", buffering=0) as f:  # fill the disk to the last block
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        # room for config.yaml and run.json, not for the checkpoint: the write that fails is the checkpoint's
        os.truncate(disk / "filler", (disk / "filler").stat().st_size - 32768)
        code, _, err = lods(*tiny(prior, out, "--steps", 10, "--resume"))
        one_line(code, err, 1, "no space")
        after = snapshot(out)
        for name in before:  # every result; config.yaml and run.json now record the longer run asked for
            if name not in ("config.yaml", "run.json"):
                assert after[name] == before[name], name
        assert set(after) == set(before)
        (disk / "filler").unlink()
        code, _, err = lods(*tiny(prior, out, "--steps", 10, "--resume"))
        assert code == 0, err
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_config_with_wrong_types_in_eval(work, lods):
    cfg = work / "config.yaml"
    cfg.write_text(cfg.read_text().replace("steps: 6", "steps: many"))
    before = snapshot(work)
    code, _, err = lods("eval", work)
    assert code == 2 and len(err) == 1 and "steps" in err[0], err
    assert snapshot(work) == before


def test_prior_train_vae_from_a_folder_without_an_autoencoder_is_bad_input(tmp_path, lods):
    (tmp_path / "empty").mkdir()
    code, _, err = lods("prior", "train", "--out", str(tmp_path / "p"), "--steps", "1", "--data-scenes", "1",
                        "--vae-from", str(tmp_path / "empty"), "--quiet")
    one_line(code, err, 2, "not an autoencoder folder")
    code, _, err = lods("prior", "train-vae", "--out", str(tmp_path / "v"), "--steps", "0", "--quiet")
    one_line(code, err, 2, "must be positive")
