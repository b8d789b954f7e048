"""The learned branch's fit: its loss on the renders against the frozen prior's on clean images."""

import pytest
import torch

from lods.evaluate.learned_fit import FIT_RATIO, learned_fit, world_truth_images
from lods.guidance import GuidanceConfig, build_guidance
from lods.priors.prior import Prior
from lods.priors.tiny_sd import build_tiny_world_prior


@pytest.fixture(scope="module")
def prior(tmp_path_factory):
    return Prior.load(str(build_tiny_world_prior(tmp_path_factory.mktemp("p") / "world")))


def test_no_learned_branch_no_fit(prior):
    sds = build_guidance("sds", prior, "a red cube", GuidanceConfig())
    clean = world_truth_images("a red cube", prior, n_views=2)
    assert learned_fit(sds, clean, clean) is None


def test_an_untrained_branch_on_the_clean_images_is_the_reference(prior):
    # before any step the learned embedding is the negative prompt's: the branch IS the frozen unconditional one
    lods = build_guidance("lods-embedding", prior, "a red cube", GuidanceConfig())
    clean = world_truth_images("a red cube", prior, n_views=2)
    fit = learned_fit(lods, clean, clean)
    assert fit["fit_ratio"] == pytest.approx(1.0) and fit["fits"]
    assert fit["untrained_loss"] == pytest.approx(fit["learned_loss"])  # nothing learned yet


def test_the_untrained_loss_is_the_frozen_branch_on_the_renders(prior):
    lods = build_guidance("lods-embedding", prior, "a red cube", GuidanceConfig())
    clean = world_truth_images("a red cube", prior, n_views=2)
    noise = torch.rand_like(clean) * 2 - 1
    before = learned_fit(lods, noise, clean)
    with torch.no_grad():
        lods.embedding.add_(torch.randn_like(lods.embedding) * 5)
    after = learned_fit(lods, noise, clean)
    assert after["untrained_loss"] == pytest.approx(before["untrained_loss"])  # the frozen branch does not move
    assert after["learned_loss"] != pytest.approx(before["learned_loss"], abs=1e-4)


def test_a_moved_branch_on_other_images_is_measured_not_assumed(prior):
    lods = build_guidance("lods-embedding", prior, "a red cube", GuidanceConfig())
    clean = world_truth_images("a red cube", prior, n_views=2)
    with torch.no_grad():
        lods.embedding.add_(torch.randn_like(lods.embedding) * 5)
    noise = torch.rand_like(clean) * 2 - 1
    fit = learned_fit(lods, noise, clean)
    assert fit["fit_ratio"] != pytest.approx(1.0, abs=1e-3)
    assert fit["fits"] == (fit["fit_ratio"] <= FIT_RATIO)


def test_the_clean_images_of_an_open_prompt_cover_its_completions(prior):
    images = world_truth_images("a cube", prior, n_views=8, max_images=16)
    assert images.shape[0] == 16  # 8 cubes × 2 views
    # every cube's colour differs: no two consecutive pairs are the same picture
    assert not torch.equal(images[0], images[2])
