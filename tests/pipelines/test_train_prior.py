"""`lods prior train` on a tiny budget: it trains, exports a loadable prior, and resumes exactly."""

import torch

from lods.pipelines.train_prior import TrainPriorConfig, train_prior
from lods.priors.prior import Prior
from lods.utils.io import load_checkpoint


def tiny(out, steps):
    return TrainPriorConfig(out=str(out), steps=steps, batch_size=4, data_scenes=3, views_per_scene=2, checkpoint_every=2, workers=1, warmup_steps=2)


def test_trains_exports_and_resumes_exactly(tmp_path):
    whole = train_prior(tiny(tmp_path / "whole", 4))
    assert whole["step"] == 4 and len(whole["history"]) == 2

    train_prior(tiny(tmp_path / "cut", 2))  # a run stopped after its checkpoint at step 2 ...
    resumed = train_prior(tiny(tmp_path / "cut", 4))  # ... continued to step 4
    assert resumed["step"] == 4
    a, _ = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.safetensors")
    b, _ = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.safetensors")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k

    prior = Prior.load(str(tmp_path / "whole" / "prior"))
    assert prior.vocabulary is not None and "cube" in prior.vocabulary
    eps = prior.predict_noise(torch.zeros(1, 3, 32, 32), torch.tensor([500]), prior.encode_text(["a red cube"]))
    assert eps.shape == (1, 3, 32, 32) and torch.isfinite(eps).all()


def test_cross_attention_from_16_trains_exports_and_loads(tmp_path):
    import pytest

    cfg = tiny(tmp_path / "c16", 2)
    cfg.cross_attention_from = 16
    train_prior(cfg)
    prior = Prior.load(str(tmp_path / "c16" / "prior"))
    assert type(prior.unet.down_blocks[1]).__name__ == "CrossAttnDownBlock2D"
    again = tiny(tmp_path / "c16", 4)  # resuming it with the other architecture is refused, with one clear message
    with pytest.raises(ValueError, match="cross_attention_from 16, not 8"):
        train_prior(again)
    bad = tiny(tmp_path / "bad", 2)
    bad.cross_attention_from = 12
    with pytest.raises(ValueError, match="choose one of"):
        train_prior(bad)
