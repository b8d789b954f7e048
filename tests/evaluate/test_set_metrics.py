"""Metrics for prompts with many right answers: the truth is the set of completions (4 views, 32²)."""

import pytest
import torch

from lods.errors import UserError
from lods.evaluate.set_metrics import (
    TruthSet,
    average_completion,
    best_of_set,
    diversity,
    foreground,
    front_camera,
    judge_confidence,
    prior_denoising_loss,
    prompt_spec,
    realism,
    truth_set,
    view_prompts,
)
from lods.evaluate.metrics import silhouette_iou
from lods.evaluate.world_eval import evaluate_against_truth
from lods.render.cameras import evaluation_cameras
from lods.world.judge import Judge
from lods.world.render import render_scene
from lods.world.scene import parse_prompt
from lods.world.shapes import COLORS

VIEWS = 4


@pytest.fixture(scope="module")
def judge():
    return Judge.load()


@pytest.fixture(scope="module")
def prior():
    from lods.priors.prior import Prior

    return Prior.load()


def render(prompt, cameras, size=32):
    scene, _ = parse_prompt(prompt)
    return render_scene(scene, cameras, size=size)


def renderer(prompt):
    return lambda cameras, size: render(prompt, cameras, size)


def mean_of(*prompts):
    def fn(cameras, size):
        outs = [render(p, cameras, size) for p in prompts]
        return {"rgb": sum(o["rgb"] for o in outs) / len(outs), "alpha": outs[0]["alpha"]}
    return fn


def test_the_set_of_a_cube_is_the_8_cubes_and_a_specified_prompt_has_one():
    cams = evaluation_cameras(2)
    cubes = truth_set(prompt_spec("a cube"), cams, 16)
    assert sorted(cubes.captions) == sorted(f"a {c} cube" for c in COLORS)
    assert tuple(cubes.rgb.shape) == (8, 2, 3, 16, 16) and tuple(cubes.alpha.shape) == (8, 2, 1, 16, 16)
    one = truth_set(prompt_spec("a red cube, front view"), cams, 16)
    assert one.captions == ("a red cube",)
    assert torch.equal(one.rgb[0], render("a red cube", cams, 16)["rgb"])  # the canonical render


def test_right_of_prompts_are_read_in_the_judges_order():
    spec = prompt_spec("a sphere to the right of a red cube")
    assert spec.relation == "to the left of" and spec.objects[0].color == "red" and spec.objects[1].color is None
    with pytest.raises(UserError, match="caption of the world"):
        prompt_spec("a DSLR photo of a hamburger")
    with pytest.raises(UserError, match="completions"):
        truth_set(prompt_spec("an object to the left of an object"), evaluation_cameras(1), 8)


def test_the_truth_scores_perfectly_against_its_own_set(judge):
    for prompt, source in [("a cube", "a green cube"), ("a red object", "a red torus"), ("a red cube", "a red cube")]:
        r = evaluate_against_truth(renderer(source), prompt, n_views=VIEWS, judge=judge)
        assert r["nearest_completion"] == source
        assert r["psnr"] >= 99 and r["iou"] == 1.0 and r["ssim"] == pytest.approx(1.0, abs=1e-5)
        assert r["saturation_error"] == pytest.approx(0.0, abs=1e-6)
        assert r["judge_color_confidence"] > 0.9 and r["judge_shape_confidence"] > 0.9 and r["judge_confidence"] > 0.9
        assert r["recognized_views"] == VIEWS
        assert len(r["per_view"]["judge_confidence"]) == VIEWS
    assert r["specified"] and r["n_completions"] == 1 and r["realism"] is None  # no prior given


def test_the_mean_of_two_completions_scores_worse_than_either(judge):
    scores = {name: evaluate_against_truth(fn, "a cube", n_views=VIEWS, judge=judge)
              for name, fn in [("red", renderer("a red cube")), ("blue", renderer("a blue cube")),
                               ("mean", mean_of("a red cube", "a blue cube"))]}
    for one in ("red", "blue"):
        assert scores["mean"]["psnr"] < scores[one]["psnr"] - 20
        assert scores["mean"]["judge_color_confidence"] < scores[one]["judge_color_confidence"]
        assert scores["mean"]["judge_confidence"] < scores[one]["judge_confidence"]
    assert scores["mean"]["n_completions"] == 8 and not scores["mean"]["specified"]


def test_judge_confidence_uses_the_named_class_where_the_prompt_names_it(judge):
    cams = evaluation_cameras(2)
    red = render("a red cube", cams)["rgb"]
    named = judge_confidence(judge, red, prompt_spec("a blue cube"))  # the prompt says blue: the judge sees red
    open_ = judge_confidence(judge, red, prompt_spec("a cube"))
    assert named["judge_color_confidence"] < 0.1 < 0.9 < open_["judge_color_confidence"]
    assert named["judge_shape_confidence"] == pytest.approx(open_["judge_shape_confidence"])


def test_best_of_set_in_2d_estimates_the_foreground():
    cam = front_camera()
    assert cam.azimuth_deg.tolist() == [0.0] and cam.elevation_deg.tolist() == [20.0]
    truth = truth_set(prompt_spec("a sphere"), cam, 32)
    blue = render("a blue sphere", cam)
    assert silhouette_iou(foreground(blue["rgb"]), blue["alpha"]).item() > 0.85  # edges are anti-aliased
    r = best_of_set(blue["rgb"], None, truth)
    assert r["nearest_completion"] == "a blue sphere" and "iou" not in r["per_view"]
    assert r["per_view"]["psnr"].item() >= 99 and len(r["set_psnr"]) == 8
    with pytest.raises(ValueError, match="do not match"):
        best_of_set(blue["rgb"][:, :, :16], None, truth)


def test_realism_is_deterministic_and_prefers_the_truth_over_noise(prior):
    cams = evaluation_cameras(2)
    truth = render("a red cube", cams)["rgb"]
    noise = torch.rand(truth.shape, generator=torch.Generator().manual_seed(0))
    a = realism(prior, truth, "a red cube", cams)
    assert a == realism(prior, truth, "a red cube", cams)
    assert a < realism(prior, noise, "a red cube", cams)
    assert view_prompts("a red cube, side view", cams, 2)[0] == "a red cube, front view"
    assert view_prompts("a red cube", None, 3) == ["a red cube"] * 3
    assert realism(prior, truth, "a red cube with a hat", cams) is None  # words the prior does not read
    with pytest.raises(ValueError, match="prompts for"):
        prior_denoising_loss(prior, prior.encode_images(truth), ["a", "b", "c"])


def test_diversity_counts_distinct_completions():
    assert diversity(["a red cube", "a blue cube", "a red cube"], 8) == {"diversity": 2, "diversity_frac": 2 / 3}
    assert diversity(["a red cube"] * 3, 1) == {"diversity": 1, "diversity_frac": 1.0}
    assert diversity(["a red cube", "a blue cube"], 8)["diversity_frac"] == 1.0
    with pytest.raises(ValueError):
        diversity([], 8)


def test_average_completion_is_the_one_nearest_the_pixel_mean():
    rgb = torch.stack([torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5), torch.ones(2, 3, 4, 4)])
    caption, db = average_completion(TruthSet(("black", "gray", "white"), rgb, torch.ones(3, 2, 1, 4, 4)))
    assert caption == "gray" and db > 60  # the mean of black, gray and white is exactly the gray
    truth = truth_set(prompt_spec("a cube"), evaluation_cameras(2), 32)
    assert average_completion(truth)[0] == "a gray cube"  # the world's palette averages to its gray
