import pytest
import torch

from lods.guidance.prompts import PromptEmbeddings
from lods.guidance.schedules import sample_timesteps, scalar_schedule, timestep_range
from lods.priors.prior import Prior
from lods.priors.tiny_sd import build_tiny_world_prior
from lods.render.cameras import orbit_cameras


def test_scalar_schedule_linear_and_jump():
    assert scalar_schedule(0, 1.0, 0.0, 10, 20) == 1.0
    assert scalar_schedule(15, 1.0, 0.0, 10, 20) == pytest.approx(0.5)
    assert scalar_schedule(25, 1.0, 0.0, 10, 20) == 0.0
    assert scalar_schedule(499, 0.98, 0.55, 500, 500) == 0.98  # a jump at step 500
    assert scalar_schedule(500, 0.98, 0.55, 500, 500) == 0.55
    assert scalar_schedule(10**6, 0.7) == 0.7


def test_timestep_range_anneals():
    assert timestep_range(0, 1000, 0.02, 0.98) == (20, 980)
    assert timestep_range(600, 1000, 0.02, 0.98, 0.55, 500, 500) == (20, 550)
    assert timestep_range(5000, 1000, 0.02, 0.98, 0.5, 0, 10000) == (20, 740)


def test_sample_timesteps_inclusive_and_seeded():
    t = sample_timesteps(20000, 20, 980, torch.Generator().manual_seed(0))
    assert t.dtype == torch.int64 and t.min() == 20 and t.max() == 980
    again = sample_timesteps(20000, 20, 980, torch.Generator().manual_seed(0))
    assert torch.equal(t, again)


def test_view_dependent_prompts(tmp_path):
    prior = Prior.load(str(build_tiny_world_prior(tmp_path / "w")))
    prompts = PromptEmbeddings(prior, "a red cube", "", view_dependent=True)
    cams = orbit_cameras(torch.tensor([10.0, 10.0, 10.0, 75.0]), torch.tensor([0.0, 90.0, 180.0, 30.0]), 2.5, 40.0)
    assert prompts.views(cams, 4) == ["front", "side", "back", "overhead"]
    want = prior.encode_text([f"a red cube, {v} view" for v in ("front", "side", "back", "overhead")])
    torch.testing.assert_close(prompts.conditional(cams, 4), want)
    torch.testing.assert_close(prompts.conditional(None, 2), prior.encode_text(["a red cube"] * 2))
    torch.testing.assert_close(prompts.unconditional(3), prior.encode_text([""] * 3))
    plain = PromptEmbeddings(prior, "a red cube", "", view_dependent=False)
    torch.testing.assert_close(plain.conditional(cams, 4), prior.encode_text(["a red cube"] * 4))
