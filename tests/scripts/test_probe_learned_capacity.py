"""scripts/probe_learned_capacity.py: LODS with a full trainable UNet copy as its learned branch, on a tiny prior."""

import json

import torch

from lods.guidance import GUIDANCES

from .conftest import load_script


def test_the_copy_learns_and_the_frozen_prior_does_not(tmp_path, tiny_prior_folder, tiny_prior):
    probe = load_script("probe_learned_capacity")
    folder, prior = tiny_prior_folder, tiny_prior
    guidance = probe.LODSFullCopy(prior, "a red cube")
    frozen = {k: v.clone() for k, v in prior.unet.state_dict().items()}
    groups = guidance.param_groups()
    assert [g["name"] for g in groups] == ["lods_embedding", "unet_copy"]
    opt = torch.optim.Adam([{k: v for k, v in g.items() if k != "name"} for g in groups])
    z = torch.rand(1, 3, 32, 32, requires_grad=True)
    out = guidance.forward_latents(z, step=0, generator=torch.Generator().manual_seed(0))
    out["loss_learned"].backward()
    opt.step()
    assert all(torch.equal(frozen[k], v) for k, v in prior.unet.state_dict().items())  # the conditional branch
    copy_changed = [k for k, v in guidance.copy_unet.state_dict().items() if not torch.equal(frozen[k], v)]
    assert len(copy_changed) > 10  # the learned branch's UNet trains, weight by weight

    try:
        row = probe.main(["a red cube", "--out", str(tmp_path / "run"), "--steps", "2", "--prior", folder])
    finally:
        GUIDANCES.pop(probe.LODSFullCopy.name, None)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert row["fit_ratio"] == round(metrics["learned_fit"]["fit_ratio"], 3) and row["steps"] == 2
