"""Step schedules: a scalar that moves between two values over a step range, and timestep sampling."""

from __future__ import annotations

import torch


def scalar_schedule(step: int, start_value: float, end_value: float | None = None, start_step: int = 0, end_step: int = 0) -> float:
    """`start_value` until `start_step`, then linear to `end_value` at `end_step`, constant after.

    end_step <= start_step means a jump at `start_step`. end_value None means constant.
    """
    if end_value is None or step < start_step:
        return float(start_value)
    if step >= end_step:
        return float(end_value)
    frac = (step - start_step) / (end_step - start_step)
    return float(start_value + frac * (end_value - start_value))


def timestep_range(step: int, num_train_timesteps: int, min_percent: float, max_percent: float,
                   max_percent_annealed: float | None = None, anneal_start_step: int = 0, anneal_end_step: int = 0) -> tuple[int, int]:
    """Inclusive [min_t, max_t] at `step`, e.g. (20, 980) for 1000 steps and 2%..98%."""
    max_pct = scalar_schedule(step, max_percent, max_percent_annealed, anneal_start_step, anneal_end_step)
    min_t = int(num_train_timesteps * min_percent)
    max_t = max(min_t, int(num_train_timesteps * max_pct))
    return min_t, max_t


def sample_timesteps(batch: int, min_t: int, max_t: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """t ~ U{min_t..max_t} (inclusive), one per sample, as int64 on `device`."""
    gen_device = generator.device if generator is not None else device
    t = torch.randint(min_t, max_t + 1, (batch,), generator=generator, device=gen_device)
    return t.to(device) if device is not None else t
