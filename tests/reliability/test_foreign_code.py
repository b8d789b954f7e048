"""A prior folder whose tokenizer asks to run its own Python (auto_map) is refused without running it, also when a
terminal is attached (where transformers would otherwise ask, and a "y" would run it)."""

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time

import pytest

from conftest import TINY_CLI, env


@pytest.fixture
def crafted(prior, tmp_path):
    folder = tmp_path / "crafted"
    shutil.copytree(prior, folder)
    marker = tmp_path / "RAN"
    tok = folder / "tokenizer"
    (tok / "tokenization_evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import PreTrainedTokenizerFast\nclass EvilTokenizer(PreTrainedTokenizerFast):\n    pass\n")
    cfg = json.loads((tok / "tokenizer_config.json").read_text())
    cfg["auto_map"] = {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", "tokenization_evil.EvilTokenizer"]}
    cfg["tokenizer_class"] = "EvilTokenizer"
    (tok / "tokenizer_config.json").write_text(json.dumps(cfg))
    return folder, marker


def test_refused_in_one_line(crafted, tmp_path, lods):
    folder, marker = crafted
    code, _, err = lods("distill2d", "a red cube", "--prior", folder, "--steps", 1, "--out", tmp_path / "o", "--quiet")
    assert code == 2 and len(err) == 1 and "auto_map" in err[0], err
    assert not marker.exists() and not (tmp_path / "o").exists()


def test_refused_under_a_terminal_even_when_answering_yes(crafted, tmp_path):
    folder, marker = crafted
    leader, follower = pty.openpty()
    p = subprocess.Popen([sys.executable, str(TINY_CLI), "distill2d", "a red cube", "--prior", str(folder), "--steps",
                          "1", "--out", str(tmp_path / "o"), "--quiet"],
                         stdin=follower, stdout=follower, stderr=follower, env=env(), close_fds=True)
    os.close(follower)
    output, t0 = b"", time.time()
    while p.poll() is None and time.time() - t0 < 120:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                output += os.read(leader, 4096)
            except OSError:
                break
        try:
            os.write(leader, b"y\n")  # whatever is asked, say yes
        except OSError:
            break
    p.wait(timeout=60)
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 0.1)
            if not ready:
                break
            output += os.read(leader, 4096)
    except OSError:
        pass
    os.close(leader)
    text = output.decode(errors="replace")
    assert p.returncode == 2, text
    assert "auto_map" in text and "Traceback" not in text
    assert not marker.exists()


def test_transformers_is_told_not_to_trust_remote_code(crafted, monkeypatch):
    """Without lods's own check, the load still does not run the folder's code."""
    from lods.errors import UserError
    from lods.priors import prior as prior_module

    folder, marker = crafted
    monkeypatch.setattr(prior_module, "refuse_custom_code", lambda folder: None)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    try:
        prior_module.Prior.load(str(folder))
    except UserError:
        pass
    assert not marker.exists()


def test_every_load_in_the_source_is_safe():
    """No pickle without weights_only=True; no transformers load without trust_remote_code=False."""
    import re
    from pathlib import Path

    import lods

    for path in Path(lods.__file__).parent.rglob("*.py"):
        text = path.read_text()
        for m in re.finditer(r"torch\.load\(([^()]|\([^()]*\))*\)", text):
            assert "weights_only=True" in m.group(0), (path, m.group(0))
        for m in re.finditer(r"(AutoTokenizer|CLIPTextModel|CLIPTokenizer|AutoModel\w*)\.from_pretrained\(([^()]|\([^()]*\))*\)",
                             text):
            assert "trust_remote_code=False" in m.group(0), (path, m.group(0))
