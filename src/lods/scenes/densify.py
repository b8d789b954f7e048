"""Adaptive density control of 3D Gaussians (3DGS): screen-space gradient statistics, clone / split / prune and the
opacity reset, editing the optimizer's parameters and per-row state in place.
"""

from __future__ import annotations

import torch
from torch import nn

from ..render.splat_torch import quat_to_rotmat

PARAMS = ("means", "scales", "quats", "opacities", "f_dc", "f_rest")


def logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p / (1 - p))


class DensityControl:
    """Mixed into `GaussianScene`: needs its PARAMS attributes, `cfg`, `_gen`, `get_scales` and `get_opacities`."""

    def _reset_stats(self) -> None:
        n, dev = self.means.shape[0], self.means.device
        self.register_buffer("grad_accum", torch.zeros(n, device=dev), persistent=False)
        self.register_buffer("grad_count", torch.zeros(n, device=dev), persistent=False)
        self.register_buffer("max_radii", torch.zeros(n, device=dev), persistent=False)

    @torch.no_grad()
    def accumulate_grads(self, out: dict[str, torch.Tensor]) -> None:
        """Add the screen-space gradient norms of visible Gaussians (out["means2d"].grad, (C, N, 2))."""
        m2d = out.get("means2d")
        if m2d is None or m2d.grad is None or m2d.shape[1] != self.num_gaussians:
            return
        n_cams, height, width = m2d.shape[0], out["rgb"].shape[-2], out["rgb"].shape[-1]
        grad = m2d.grad * m2d.new_tensor([width / 2 * n_cams, height / 2 * n_cams])
        visible = (out["radii"] > 0).all(-1)
        self.grad_accum += (grad.norm(dim=-1) * visible).sum(0)
        self.grad_count += visible.sum(0)
        self.max_radii = torch.maximum(self.max_radii, out["radii"].amax(dim=(0, 2)).to(self.max_radii))

    @torch.no_grad()
    def densify_and_prune(self, optimizer: torch.optim.Optimizer | None) -> dict[str, int]:
        cfg = self.cfg
        n = self.num_gaussians
        grads = self.grad_accum / self.grad_count.clamp_min(1)
        max_scale = self.get_scales().max(-1).values
        candidates = grads >= cfg.grad_threshold
        room = max(cfg.max_gaussians - n, 0)
        if int(candidates.sum()) > room:  # keep the largest gradients within the budget (each adds one net)
            keep = torch.zeros_like(candidates)
            keep[torch.topk(torch.where(candidates, grads, -1.0), room).indices] = True
            candidates &= keep
        small = max_scale <= cfg.percent_dense * cfg.scene_extent
        clone, split = candidates & small, candidates & ~small
        big = self.max_radii > cfg.prune_screen_size if cfg.prune_screen_size is not None else torch.zeros_like(clone)
        n_children = 2 * int(split.sum())

        # Clone: copy as is. Split: two children sampled from the parent, scales / 1.6, parent removed.
        extra = {name: getattr(self, name).data[clone] for name in PARAMS}
        sel = split.nonzero().squeeze(1)
        if sel.numel():
            children = {name: getattr(self, name).data[sel].repeat(2, *[1] * (getattr(self, name).dim() - 1))
                        for name in PARAMS}  # every parent twice
            stds = children["scales"].exp()
            noise = torch.randn(stds.shape, generator=self._gen).to(stds) * stds
            children["means"] = (quat_to_rotmat(children["quats"]) @ noise[..., None]).squeeze(-1) + children["means"]
            children["scales"] = (stds / 1.6).log()
            extra = {name: torch.cat([extra[name], children[name]]) for name in PARAMS}
        self._replace_rows(optimizer, (~split).nonzero().squeeze(1), extra)

        max_scale = self.get_scales().max(-1).values
        prune = (self.get_opacities() < cfg.prune_opacity) | (max_scale > cfg.prune_scale * cfg.scene_extent)
        # rows are now [kept (not split), clones, children]; children start small on screen
        prune |= torch.cat([big[~split], big[clone], big.new_zeros(n_children)])
        if bool(prune.all()):  # never remove every Gaussian
            prune[:] = False
        self._replace_rows(optimizer, (~prune).nonzero().squeeze(1), None)
        self._reset_stats()
        self.last_densify = {"cloned": int(clone.sum()), "split": int(split.sum()), "pruned": int(prune.sum()),
                             "total": self.num_gaussians}
        return self.last_densify

    @torch.no_grad()
    def reset_opacity(self, optimizer: torch.optim.Optimizer | None, value: float = 0.01) -> None:
        """Clamp opacities to <= value and clear their optimizer moments (3DGS's opacity reset)."""
        new = torch.minimum(self.opacities.data, logit(torch.tensor(value)).to(self.opacities))
        self._swap(optimizer, "opacities", new, keep=None, n_extra=0)

    def _replace_rows(self, optimizer, keep: torch.Tensor, extra: dict[str, torch.Tensor] | None) -> None:
        """Keep rows `keep` of every attribute and append `extra` rows; the optimizer follows."""
        for name in PARAMS:
            old = getattr(self, name).data
            new = old[keep] if extra is None else torch.cat([old[keep], extra[name].to(old)])
            self._swap(optimizer, name, new, keep, 0 if extra is None else extra[name].shape[0])

    def _swap(self, optimizer, name: str, value: torch.Tensor, keep: torch.Tensor | None, n_extra: int) -> None:
        """Install `value` as parameter `name`, replacing it in the optimizer's group; per-row state (e.g. Adam
        moments) is gathered at `keep` with zeros for appended rows, or zeroed when keep is None."""
        old = getattr(self, name)
        new = nn.Parameter(value, requires_grad=old.requires_grad)
        if optimizer is not None:
            for group in optimizer.param_groups:
                for i, p in enumerate(group["params"]):
                    if p is old:
                        group["params"][i] = new
            state = optimizer.state.pop(old, None)
            if state is not None:
                for key, v in state.items():
                    if isinstance(v, torch.Tensor) and v.shape == old.shape:
                        if keep is None:
                            state[key] = torch.zeros_like(value)
                        else:
                            state[key] = torch.cat([v[keep], v.new_zeros((n_extra,) + v.shape[1:])])
                optimizer.state[new] = state
        setattr(self, name, new)
