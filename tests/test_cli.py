"""The command line as a user meets it: help, every guidance through --prior, and one-line errors (exit 2)."""

import subprocess
import sys

import pytest

from lods.cli import main
from lods.guidance import GUIDANCES
from lods.priors.tiny_sd import build_tiny_sd


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    return str(build_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd", latent=True))


def run_cli(monkeypatch, *args) -> int:
    monkeypatch.setattr(sys, "argv", ["lods", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "lods.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("generate", "image-to-3d", "distill2d", "eval", "prior", "bench"):
        assert command in out


@pytest.mark.parametrize("guidance", list(GUIDANCES))
def test_distill2d_every_guidance_on_tiny_sd(sd_folder, tmp_path, monkeypatch, guidance):
    out = tmp_path / guidance
    code = run_cli(monkeypatch, "distill2d", "a hamburger", "--guidance", guidance, "--prior", sd_folder,
                   "--steps", "2", "--out", str(out), "--quiet")
    assert code in (0, None)
    for name in ("image.png", "metrics.json", "config.yaml", "loss.png"):
        assert (out / name).exists()


def test_distill2d_takes_the_presets_learning_rates_and_set(sd_folder, tmp_path, monkeypatch):
    """The playground uses the method's preset settings (fast: tuned on the embedded prior), not its scale; --set wins."""
    import yaml

    from lods.pipelines.distill2d import preset_guidance_config
    from lods.pipelines.presets import preset_config

    fast = preset_guidance_config("lods-lora")
    assert fast.lora_lr == preset_config("fast", "gs", "lods-lora").guidance_config.lora_lr and fast.guidance_scale is None
    assert preset_guidance_config("lods-lora", "paper").lora_lr == 5e-7
    out = tmp_path / "run"
    code = run_cli(monkeypatch, "distill2d", "a hamburger", "--prior", sd_folder, "--steps", "1", "--out", str(out),
                   "--quiet", "--set", "guidance_config.embedding_lr=0.002")
    assert code in (0, None)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["guidance_config"]["embedding_lr"] == 0.002 and saved["guidance_scale"] == 1000.0  # the method's default


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--prior", "{missing}"], "not found"),
        (["--prior", "{not_diffusers}"], "not a diffusers"),
        (["--guidance", "nope"], "unknown guidance"),
        (["--steps", "0"], "steps"),
        (["--cfg", "0"], "cfg"),
        (["--prompt-empty"], "empty"),
        (["--preset", "turbo"], "unknown preset"),
        (["--set", "guidance_config.embedding_lr=-1"], "embedding_lr"),
        (["--set", "guidance_config.warp=1"], "warp"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(sd_folder, tmp_path, monkeypatch, capsys, args, needle):
    not_diffusers = tmp_path / "plain"
    not_diffusers.mkdir()
    (not_diffusers / "readme.txt").write_text("not a model")
    prompt = "a hamburger"
    if args == ["--prompt-empty"]:
        prompt, args = "", []
    args = [a.format(missing=tmp_path / "nowhere", not_diffusers=not_diffusers) for a in args]
    if "--prior" not in args:
        args += ["--prior", sd_folder]
    out = tmp_path / "out"
    code = run_cli(monkeypatch, "distill2d", prompt, *args, "--steps" if "--steps" not in args else "--seed", "2" if "--steps" not in args else "0", "--out", str(out))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and needle in err[0].lower() and "Traceback" not in err[0]
    assert not out.exists()


def test_unknown_word_for_the_world_prior(tmp_path, monkeypatch, capsys):
    from lods.priors.tiny_sd import build_tiny_world_prior

    prior = build_tiny_world_prior(tmp_path / "world")
    code = run_cli(monkeypatch, "generate", "a red dragon", "--prior", str(prior), "--out", str(tmp_path / "run"))
    err = capsys.readouterr().err
    assert code == 2 and "dragon" in err and "cube" in err  # names the unknown word and lists the known ones
    assert not (tmp_path / "run").exists()


def test_judge_eval_scores_the_shipped_judge(tmp_path, monkeypatch, capsys):
    import json

    out = tmp_path / "judge.json"
    code = run_cli(monkeypatch, "judge", "eval", "--scenes", "3", "--out", str(out))
    assert code in (0, None)
    result = json.loads(out.read_text())
    assert result["images"] == 24 and result["cameras"] == "ring"
    assert 0.5 <= result["exact"] <= 1.0  # the shipped judge is far above chance on clean renders


def test_judge_eval_rejects_unknown_cameras(monkeypatch, capsys):
    assert run_cli(monkeypatch, "judge", "eval", "--cameras", "fisheye") == 2
    assert "--cameras" in capsys.readouterr().err
