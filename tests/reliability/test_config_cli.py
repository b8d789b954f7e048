"""The command line's configs: `--set` (typed, validated before the folder), bad nested configs, `lods eval` and
`lods prior eval` on tiny budgets."""

import json
import shutil

import pytest
import yaml
from conftest import tiny


@pytest.fixture(scope="module")
def world_image(tmp_path_factory):
    import torch
    from PIL import Image

    from lods.pipelines.image_to_3d import reference_cameras
    from lods.world.render import render_scene
    from lods.world.scene import parse_prompt

    r = render_scene(parse_prompt("a red cube")[0], reference_cameras(), size=32)
    rgba = torch.cat([r["rgb"][0], r["alpha"][0]], 0)
    path = tmp_path_factory.mktemp("img") / "cube.png"
    Image.fromarray((rgba * 255).round().byte().permute(1, 2, 0).numpy(), "RGBA").save(path)
    return path


def image_args(prior, image, out, *extra):
    return ("image-to-3d", image, "--prompt", "a red cube", "--prior", prior, "--out", out, "--quiet", *extra)


def test_set_lands_typed_in_the_generate_config(prior, tmp_path, lods):
    out = tmp_path / "run"
    code, _, err = lods(*tiny(prior, out, "--steps", "2", "--set", "gaussians.num_points=150",
                              "--set", "lambdas.distill=2", "--set", "cameras.elevation_range=[0, 30]"))
    assert code == 0, err
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["gaussians"]["num_points"] == 150 and saved["lambdas"]["distill"] == 2
    assert saved["cameras"]["elevation_range"] == [0, 30]
    assert json.loads((out / "run.json").read_text())["config"]["gaussians.num_points"] == 150


def test_set_lands_typed_in_the_image_config(prior, tmp_path, lods, world_image):
    out = tmp_path / "run"
    code, _, err = lods(*image_args(prior, world_image, out, "--steps", "2", "--set", "lambdas.rgb=5000",
                                    "--set", "background_tolerance=0.2", "--set", "nerf.num_samples=8",
                                    "--backbone", "nerf"))
    assert code == 0, err
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["lambdas"]["rgb"] == 5000 and saved["background_tolerance"] == 0.2
    assert saved["nerf"]["num_samples"] == 8 and saved["task"] == "image-to-3d"


BAD_SETS = [
    ("nope=1", "unknown GenerateConfig key"),
    ("gaussians.num_pointz=3", "gaussians.num_pointz"),
    ("gaussians.backend=gpu", "gaussians.backend must be one of"),
    ("nerf.encoding=mlp", "nerf.encoding must be one of"),
    ("steps=abc", "steps: expected an integer"),
    ("export.nope.deeper=1", "unknown key 'export.nope'"),
    ("lambdas.sparsty=1", "lambdas.sparsty names no loss"),
    ("lambdas.sds=1", "lambdas.sds was renamed lambdas.distill"),
]


@pytest.mark.parametrize("item,needle", BAD_SETS)
@pytest.mark.parametrize("command", ["generate", "image-to-3d"])
def test_a_bad_set_is_one_line_exit_2_and_no_folder(prior, tmp_path, lods, world_image, command, item, needle):
    out = tmp_path / "run"
    args = tiny(prior, out) if command == "generate" else image_args(prior, world_image, out)
    code, stdout, err = lods(*args, "--set", item)
    needle = needle.replace("GenerateConfig", "ImageTo3DConfig") if command == "image-to-3d" else needle
    assert code == 2 and len(err) == 1 and err[0].startswith("lods: error:") and needle in err[0], err
    assert not out.exists()


def test_a_scene_loss_without_its_lambda_is_named(prior, tmp_path, lods):
    out = tmp_path / "run"
    code, _, err = lods(*tiny(prior, out, "--set", "gaussians.reg_anisotropy=true"))
    assert code == 2 and len(err) == 1 and "loss_anisotropy has no weight: set lambdas.anisotropy" in err[0], err
    assert not out.exists()
    code, _, err = lods(*tiny(prior, out, "--steps", "1", "--set", "gaussians.reg_anisotropy=true",
                              "--set", "lambdas.anisotropy=0.5"))
    assert code == 0, err
    assert "loss_anisotropy" in json.loads((out / "metrics.json").read_text())["final_losses"]


def test_eval_rescores_a_run_folder(finished, tmp_path, lods):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    metrics = json.loads((run / "metrics.json").read_text())
    truth = metrics.pop("ground_truth")
    (run / "metrics.json").write_text(json.dumps(metrics))
    code, stdout, err = lods("eval", run)
    assert code == 0 and err == [], err
    printed = json.loads(stdout)
    assert printed["checkpoint_step"] == 6 and printed["unfinished"] is False
    rewritten = json.loads((run / "metrics.json").read_text())["ground_truth"]
    for k in ("psnr", "ssim", "iou", "r_at_1", "recognized_views", "n_views"):  # the same final scene, scored again
        assert rewritten[k] == printed[k] == pytest.approx(truth[k], abs=1e-6), k
    assert rewritten["n_views"] == 4


def test_prior_eval_on_a_tiny_budget(prior, tmp_path, lods):
    from lods.evaluate.prior_eval import prior_eval_prompts
    from lods.world.judge import parse_world_prompt

    out = tmp_path / "prior_eval.json"
    code, stdout, err = lods("prior", "eval", "--prior", prior, "--cfg", "3", "--n", "1", "--steps", "2", "--out", out)
    assert code == 0, err
    result = json.loads(out.read_text())
    assert json.loads(stdout) == result and list(result) == ["3.0"]
    r = result["3.0"]
    prompts = prior_eval_prompts()
    assert r["samples"] == len(prompts)
    assert set(r["recognized"]) == {parse_world_prompt(p).category for p in prompts}
    for v in (*r["recognized"].values(), r["recognized_all"], r["shape_and_colour_single_object"], r["border_brightness"]):
        assert 0.0 <= v <= 1.0
    code, _, err = lods("prior", "eval", "--prior", prior, "--n", "0")
    assert code == 2 and len(err) == 1


def test_prior_eval_coverage_alone(prior, tmp_path, lods):
    from lods.evaluate.prior_eval import completion_coverage
    from lods.priors.prior import Prior
    from lods.world.judge import Judge

    out = tmp_path / "coverage.json"
    code, _, err = lods("prior", "eval", "--prior", prior, "--cfg", "3", "--n", "0", "--coverage", "3", "--steps", "2",
                        "--out", out)
    assert code == 0, err
    result = json.loads(out.read_text())
    assert list(result) == ["coverage"]  # --n 0: no prompt table
    by_prompt = {c["prompt"]: c for c in result["coverage"]}
    assert set(by_prompt) == {"a cube", "a red object"}
    assert (by_prompt["a cube"]["open"], by_prompt["a cube"]["values"]) == ("color", 8)
    assert (by_prompt["a red object"]["open"], by_prompt["a red object"]["values"]) == ("shape", 6)
    for c in by_prompt.values():
        assert c["cfg"] == 3.0 and sum(c["counts"].values()) == 3
        assert c["covered"] == sum(v > 0 for v in c["counts"].values())
    with pytest.raises(ValueError, match="nothing to cover"):
        completion_coverage(Prior.load(prior), Judge.load(None), "a red cube", n=1, steps=1)


def test_set_reads_exponents_and_inf_as_numbers():
    # YAML 1.1 reads `1e-2` and `inf` as text; a float field takes the number they spell
    from lods.config import apply_sets
    from lods.errors import ConfigError
    from lods.pipelines.distill2d import Distill2DConfig

    cfg = apply_sets(Distill2DConfig(prompt="a red cube"),
                     ["lr=1e-2", "guidance_config.embedding_lr=3E-5", "guidance_scale=inf"])
    assert cfg.lr == 0.01 and cfg.guidance_config.embedding_lr == 3e-5 and cfg.guidance_scale == float("inf")
    with pytest.raises(ConfigError, match="lr: expected a number, got 'fast'"):
        apply_sets(Distill2DConfig(prompt="a red cube"), ["lr=fast"])
    with pytest.raises(ConfigError, match="prompt"):  # a text field keeps its text check
        apply_sets(Distill2DConfig(), ["prompt=[1, 2]"])


def test_distill2d_says_whether_the_learned_branch_fits(prior, tmp_path, lods):
    out = tmp_path / "run"
    code, stdout, err = lods("distill2d", "a red cube", "--prior", prior, "--steps", 2, "--out", out, "--quiet",
                             "--set", "lr=1e-2")
    assert code == 0, err
    fit = json.loads((out / "metrics.json").read_text())["learned_fit"]
    assert fit["untrained_loss"] > 0
    assert f"{fit['fit_ratio']:.2f}×" in stdout and ("does NOT fit" in stdout) == (not fit["fits"])
    code, stdout, err = lods("distill2d", "a red cube", "--prior", prior, "--steps", 1, "--out", tmp_path / "sds",
                             "--quiet", "--guidance", "sds")
    assert code == 0 and "learned branch" not in stdout, err
