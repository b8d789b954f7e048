import pytest
import torch

from lods.errors import UserError
from lods.evaluate.world_eval import all_prompts, default_suite, evaluate_against_truth
from lods.world.judge import Judge
from lods.world.render import render_scene
from lods.world.scene import parse_prompt


@pytest.fixture(scope="module")
def judge():
    return Judge.load()


def truth_renderer(prompt):
    scene, _ = parse_prompt(prompt)
    return lambda cameras, size: render_scene(scene, cameras, size=size)


def test_the_truth_scores_perfectly(judge):
    for prompt in ["a red cube", "a purple pyramid to the left of a red sphere"]:
        r = evaluate_against_truth(truth_renderer(prompt), prompt, judge=judge)
        assert r["iou"] == 1.0 and r["psnr"] >= 99 and r["ssim"] == pytest.approx(1.0, abs=1e-5)
        assert r["saturation_error"] == pytest.approx(0.0, abs=1e-6)
        assert r["feature_similarity"] == pytest.approx(1.0, abs=1e-5)
        assert r["recognized_views"] == 8 and r["r_at_1"] == 1.0
        assert r["truth_recognized_views"] == 8 and r["truth_r_at_1"] == 1.0
        assert all(len(v) == 8 for v in r["per_view"].values())
    assert r["category"] == "multi" and r["suite_size"] == 200


def test_right_of_prompt_scores_its_own_truth_perfectly(judge):
    prompt = "a red sphere to the right of a purple pyramid"
    r = evaluate_against_truth(truth_renderer(prompt), prompt, judge=judge)
    assert r["caption"] == "a purple pyramid to the left of a red sphere"
    assert r["recognized_views"] == 8 and r["iou"] == 1.0


def test_truth_scores_give_the_ceiling_when_an_object_hides(judge):
    # at azimuth 270 the cylinder stands in front of the pyramid and hides it: the judge cannot see the pyramid
    prompt = "a blue cylinder to the left of an orange pyramid"
    r = evaluate_against_truth(truth_renderer(prompt), prompt, judge=judge)
    assert r["per_view"]["recognized"][0] and r["per_view"]["recognized"][4]  # front and back views
    assert r["recognized_views"] == r["truth_recognized_views"] >= 6
    assert r["iou"] == 1.0


def test_shifted_and_recoloured_results_score_worse(judge):
    prompt = "a red cube"
    base = truth_renderer(prompt)

    def shifted(cameras, size):
        out = base(cameras, size)
        return {"rgb": torch.roll(out["rgb"], 4, dims=-1), "alpha": torch.roll(out["alpha"], 4, dims=-1)}

    r = evaluate_against_truth(shifted, prompt, judge=judge)
    assert r["iou"] < 0.8 and r["psnr"] < 25 and r["ssim"] < 0.95
    gray = evaluate_against_truth(truth_renderer("a gray cube"), prompt, judge=judge)
    assert gray["iou"] == 1.0  # same silhouette
    assert gray["saturation_error"] < -0.5
    assert gray["recognized_views"] == 0 and gray["r_at_1"] == 0.0
    assert gray["truth_recognized_views"] == 8  # the ceiling comes from the true red cube
    assert gray["judge_log_likelihood"] < -5


def test_explicit_suite_and_fewer_views(judge):
    prompt = "a green torus on a mat"
    r = evaluate_against_truth(truth_renderer(prompt), prompt, suite_prompts=["a green torus on a pedestal"], n_views=4, judge=judge)
    assert r["n_views"] == 4 and len(r["per_view"]["psnr"]) == 4
    assert r["suite_size"] == 2 and r["r_at_1"] == 1.0


def test_not_a_world_caption_is_a_user_error(judge):
    with pytest.raises(UserError, match="caption of the world"):
        evaluate_against_truth(truth_renderer("a red cube"), "a DSLR photo of a hamburger", judge=judge)


def test_bad_render_shape_is_an_error(judge):
    with pytest.raises(ValueError, match="render_fn"):
        evaluate_against_truth(lambda c, s: {"rgb": torch.ones(1, 3, s, s), "alpha": torch.ones(1, 1, s, s)}, "a red cube", judge=judge)


def test_default_suites():
    assert len(default_suite("single")) == 48
    assert len(default_suite("surroundings")) == 144
    assert len(all_prompts("multi")) == 48 * 47 * 2
    suite = default_suite("multi", "a red cube to the right of a blue sphere")
    assert len(suite) == 200 and len(set(suite)) == 200
    assert suite[:2] == ["a blue sphere to the left of a red cube", "a red cube to the left of a blue sphere"]
    assert default_suite("multi") == default_suite("multi")  # deterministic
    assert all("right of" not in p for p in suite)
    with pytest.raises(ValueError):
        default_suite("giant")
