"""How well can ANY learned branch fit the renders? LODS in the 2D playground with the most capacity and reach a
learned unconditional branch can have: a full, trainable copy of the prior's UNet (every weight) beside the learned
null embedding. The conditional branch stays the frozen prior. Issue 10, item 1: if this branch does not fit the
renders either, the embedding's (or the LoRA's) reach into the UNet is not what keeps them from fitting.

    python scripts/probe_learned_capacity.py "a blue torus" --copy-lr 1e-3 --out runs/probe/torus
    python scripts/probe_learned_capacity.py "a cube" --copy-lr 1e-3 --learned-draws 4 --steps 500 --out runs/probe/cube

Writes a normal `lods distill2d` run folder (image.png, metrics.json with `learned_fit`) and prints one JSON line.
The guidance is registered for this process only, as "lods-fullcopy"; nothing in the package changes.
"""

from __future__ import annotations

import argparse
import copy
import json

from lods.guidance import GUIDANCES
from lods.guidance.lods_embedding import LODSEmbedding
from lods.pipelines.distill2d import Distill2DConfig, preset_guidance_config, run_distill2d


class LODSFullCopy(LODSEmbedding):
    """LODS-embedding whose learned branch runs a trainable copy of the whole UNet (learning rate `copy_lr`)."""

    name = "lods-fullcopy"
    copy_lr = 1e-3

    def __init__(self, prior, prompt, config=None):
        super().__init__(prior, prompt, config)
        self.copy_unet = copy.deepcopy(prior.unet).float().eval()
        for p in self.copy_unet.parameters():
            p.requires_grad_(True)

    def learned_unconditional(self, z_t, t):
        frozen, self.prior.unet = self.prior.unet, self.copy_unet
        try:
            return super().learned_unconditional(z_t, t)
        finally:
            self.prior.unet = frozen

    def branches(self, z_t, t, cond):
        return self.conditional(z_t, t, cond), self.learned_unconditional(z_t, t)

    def param_groups(self) -> list[dict]:
        return super().param_groups() + [{"params": list(self.copy_unet.parameters()), "lr": self.copy_lr,
                                          "name": "unet_copy", "weight_decay": 0.0}]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prompt")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cfg", type=float, default=1000.0)
    ap.add_argument("--copy-lr", type=float, default=1e-3, help="learning rate of the UNet copy (Adam)")
    ap.add_argument("--learned-draws", type=int, default=1)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prior", default=None, help="a prior folder (default: the embedded prior)")
    args = ap.parse_args(argv)
    LODSFullCopy.copy_lr = args.copy_lr
    GUIDANCES[LODSFullCopy.name] = LODSFullCopy
    gc = preset_guidance_config("lods-embedding")
    gc.learned_draws = args.learned_draws
    cfg = Distill2DConfig(prompt=args.prompt, guidance=LODSFullCopy.name, guidance_scale=args.cfg, steps=args.steps,
                          out=args.out, seed=args.seed, prior=args.prior, guidance_config=gc)
    m = run_distill2d(cfg)
    fit = m.get("learned_fit") or {}
    row = {"prompt": args.prompt, "copy_lr": args.copy_lr, "learned_draws": args.learned_draws, "steps": args.steps,
           "saturation": round(m["saturation"], 3), "realism": round(m["prior_denoising_loss"], 3),
           **{k: round(fit[k], 3) for k in ("fit_ratio", "learned_loss", "untrained_loss", "clean_reference_loss")
              if k in fit}}
    print(json.dumps(row))
    return row


if __name__ == "__main__":
    main()
