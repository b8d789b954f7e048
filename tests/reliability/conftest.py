"""Shared helpers: the real `lods` command line on a tiny config, in-process or in a subprocess."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TINY_CLI = HERE / "tiny_cli.py"
sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def prior(tmp_path_factory):
    from lods.priors.tiny_sd import build_tiny_world_prior

    return str(build_tiny_world_prior(tmp_path_factory.mktemp("prior") / "world"))


def _tiny(monkeypatch) -> None:
    import tiny_cli

    from lods.pipelines import presets

    monkeypatch.setattr(presets, "preset_config", tiny_cli.tiny_preset)


def run_here(*args) -> int:
    """The tiny `lods` in this process (for fixtures: no capture); returns the exit code."""
    from lods.cli import run_main

    with pytest.MonkeyPatch.context() as mp:
        _tiny(mp)
        return run_main([str(a) for a in args])


@pytest.fixture
def lods(monkeypatch, capsys):
    """lods(*args) -> (exit code, stdout, stderr lines), in this process, with the tiny presets."""
    from lods.cli import run_main

    _tiny(monkeypatch)

    def call(*args):
        capsys.readouterr()
        code = run_main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, [line for line in captured.err.splitlines() if line.strip()]

    return call


def env() -> dict:
    return {**os.environ, "LODS_THREADS": "1", "PYTHONPATH": str(HERE.parent.parent / "src")}


def spawn(*args, **kw) -> subprocess.Popen:
    """The tiny `lods` in a subprocess (its own process group)."""
    return subprocess.Popen([sys.executable, str(TINY_CLI), *map(str, args)], env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def run(*args, timeout=300) -> tuple[int, str, list[str]]:
    p = spawn(*args)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, error_lines(err)


def error_lines(err: str) -> list[str]:
    """stderr lines that lods wrote (third-party load-time chatter is dropped)."""
    return [line for line in err.splitlines() if line.startswith("lods:") or "Traceback" in line or "Error" in line]


def snapshot(folder) -> dict:
    """{relative path: sha256} of every file under `folder`."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


OUTPUTS = ("checkpoints/last.safetensors", "model.ply", "mesh.glb", "views.png", "turntable.mp4")


def same_outputs(a, b) -> list[str]:
    """The outputs (OUTPUTS) that differ between run folders a and b, byte for byte."""
    return [n for n in OUTPUTS if (Path(a) / n).read_bytes() != (Path(b) / n).read_bytes()]


def tiny(prior, out, *extra, prompt="a red cube"):
    """`lods generate` arguments of a tiny run on the test prior."""
    return ("generate", prompt, "--prior", prior, "--out", out, "--quiet", *extra)


@pytest.fixture(scope="module")
def finished(prior, tmp_path_factory):
    """A finished tiny run (read-only for the tests: copy it before changing it)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert run_here(*tiny(prior, out)) == 0
    return out
