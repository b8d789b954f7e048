"""The shipped judge: it loads, reads fresh ground-truth renders back into their captions, and scores prompts."""

import pytest
import torch

from lods.errors import UserError
from lods.render.cameras import evaluation_cameras, orbit_cameras
from lods.world.judge import HEAD_CLASSES, Judge, prompt_heads, resize_to_judge
from lods.world.render import render_scene
from lods.world.scene import parse_prompt

PROMPTS = [
    "a red cube",
    "a green torus",
    "a purple cone on a pedestal",
    "a yellow sphere on a checkered floor",
    "a blue cylinder to the left of an orange pyramid",
    "a pink sphere on top of a gray cube",
]


@pytest.fixture(scope="module")
def judge():
    return Judge.load()


def render(prompt, cameras=None, size=32):
    scene, _ = parse_prompt(prompt)
    return render_scene(scene, cameras if cameras is not None else evaluation_cameras(8), size=size)["rgb"]


def fresh_cameras(n=10, seed=123):
    """Random cameras from a seed no dataset uses, at elevations 0..45 (from higher up an object hides a pedestal)."""
    g = torch.Generator().manual_seed(seed)
    el = torch.rand(n, generator=g) * 45
    az = torch.rand(n, generator=g) * 360 - 180
    return orbit_cameras(el, az, 2.5, 40.0)


def test_shipped_judge_is_small_and_reports_accuracy(judge):
    acc = judge.meta["heldout_accuracy"]
    assert acc["exact"] >= 0.95
    assert sum(p.numel() for p in judge.net.parameters()) * 4 <= 2 * 2**20


def unoccluded(prompt, cameras):
    """Views that show both objects: a side-by-side pair seen along its axis hides the far object behind the near one."""
    if "left of" not in prompt and "right of" not in prompt:
        return torch.ones(len(cameras), dtype=torch.bool)
    return torch.sin(torch.deg2rad(cameras.azimuth_deg)).abs() < 0.9


@pytest.mark.parametrize("prompt", PROMPTS)
def test_recognizes_fresh_ground_truth(judge, prompt):
    for cams in (evaluation_cameras(8), fresh_cameras()):
        keep = unoccluded(prompt, cams)
        assert keep.sum() >= 3
        assert judge.recognizes(render(prompt, cams), prompt)[keep].all()


def test_recognizes_rejects_a_wrong_colour_shape_or_relation(judge):
    images = render("a red cube")
    assert not judge.recognizes(images, "a gray cube").any()
    assert not judge.recognizes(images, "a red sphere").any()
    assert not judge.recognizes(images, "a red cube on a mat").any()
    pair = render("a blue cylinder to the left of an orange pyramid")
    assert not judge.recognizes(pair, "an orange pyramid to the left of a blue cylinder").any()
    assert not judge.recognizes(pair, "a blue cylinder on top of an orange pyramid").any()


def test_predict_gives_probabilities_per_head(judge):
    probs = judge.predict(render("a red cube", evaluation_cameras(3)))
    assert set(probs) == set(HEAD_CLASSES)
    for head, p in probs.items():
        assert p.shape == (3, len(HEAD_CLASSES[head]))
        assert torch.allclose(p.sum(-1), torch.ones(3), atol=1e-5)
    assert (probs["color1"].argmax(-1) == HEAD_CLASSES["color1"].index("red")).all()


def test_prompt_log_likelihood_prefers_the_true_prompt(judge):
    images = render("a red cube", evaluation_cameras(4))
    prompts = ["a red cube", "a gray cube", "a red sphere", "a red cube on a mat", "a red cube to the left of a blue sphere"]
    scores = judge.prompt_log_likelihood(images, prompts)
    assert scores.shape == (4, 5)
    assert (scores <= 0).all()
    assert (scores.argmax(1) == 0).all()
    # a recoloured object scores lower for the original prompt
    gray = render("a gray cube", evaluation_cameras(4))
    assert (judge.prompt_log_likelihood(gray, "a red cube")[:, 0] < scores[:, 0] - 5).all()


def test_right_of_is_read_as_the_canonical_left_of(judge):
    images = render("a blue cylinder to the left of an orange pyramid", evaluation_cameras(2))
    a = judge.prompt_log_likelihood(images, ["an orange pyramid to the right of a blue cylinder, front view"])
    b = judge.prompt_log_likelihood(images, ["a blue cylinder to the left of an orange pyramid"])
    assert torch.equal(a, b)


def test_r_at_1(judge):
    from lods.evaluate.world_eval import default_suite

    images = render("a green torus", evaluation_cameras(4))
    suite = default_suite("single")
    assert judge.r_at_1(images, "a green torus", suite) == 1.0
    assert judge.r_at_1(images, "a blue torus", suite) == 0.0


def test_other_sizes_are_resized(judge):
    big = render("a purple cone on a pedestal", evaluation_cameras(4), size=64)
    assert resize_to_judge(big).shape == (4, 3, 32, 32)
    assert judge.recognizes(big, "a purple cone on a pedestal").all()
    small = torch.nn.functional.interpolate(big, size=24, mode="area")
    assert resize_to_judge(small).shape == (4, 3, 32, 32)


def test_features_are_penultimate_and_discriminate(judge):
    a = judge.features(render("a red cube", evaluation_cameras(2)))
    b = judge.features(render("a red cube", evaluation_cameras(2, elevation_deg=25)))
    c = judge.features(render("a green torus on a mat", evaluation_cameras(2)))
    assert a.shape == (2, judge.arch.hidden)
    cos = torch.nn.functional.cosine_similarity
    assert (cos(a, b) > cos(a, c)).all()


def test_non_world_prompts_are_user_errors(judge):
    with pytest.raises(UserError, match="caption of the world"):
        judge.recognizes(torch.ones(1, 3, 32, 32), "a hamburger")
    with pytest.raises(UserError):
        judge.prompt_log_likelihood(torch.ones(1, 3, 32, 32), ["a red cube", "a cat"])


def test_prompt_heads_name_only_the_attributes_of_the_caption():
    single, _ = parse_prompt("a red cube")
    assert set(prompt_heads(single)) == {"category", "shape1", "color1"}
    surr, _ = parse_prompt("a red cube on a mat")
    assert set(prompt_heads(surr)) == {"category", "shape1", "color1", "context"}
    right, _ = parse_prompt("a red cube to the right of a blue sphere")
    heads = prompt_heads(right)
    assert set(heads) == {"category", "shape1", "color1", "relation", "shape2", "color2"}
    assert HEAD_CLASSES["color1"][heads["color1"]] == "blue"  # canonical: the sphere is the left object


def test_missing_judge_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no judge"):
        Judge.load(tmp_path)
