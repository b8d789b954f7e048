"""The loop's per-step losses, read back from the device in batches.

Reading a CUDA tensor on the host waits for the GPU (a host sync). `StepLog` keeps each step's loss terms and total
on the device and reads them in ONE transfer every `every` steps (always before a checkpoint and at the end): on
the CPU `every` is 1, so each step is checked before its update, exactly as a plain loop. A non-finite total raises
`Diverged` naming its step; no checkpoint is written after it, since every checkpoint follows a flush.
"""

from __future__ import annotations

import math

import torch

from ..errors import Diverged

SYNC_EVERY_CUDA = 10


class StepLog:
    def __init__(self, history: list, device: torch.device, progress=None, total_steps: int = 0, kept=lambda: ""):
        self.history = history
        self.every = 1 if device.type == "cpu" else SYNC_EVERY_CUDA
        self.progress = progress
        self.total_steps = total_steps
        self.kept = kept  # () -> what survives a divergence, for its message
        self.pending: list[tuple[int, list[str], torch.Tensor]] = []

    def add(self, step: int, terms: dict[str, torch.Tensor], total: torch.Tensor, force: bool = False) -> None:
        """Record step `step` (1-based); flush when `every` steps are pending or `force` (a checkpoint or the end)."""
        names = list(terms)
        values = torch.stack([v.detach().float().reshape(()) for v in terms.values()] + [total.detach().float().reshape(())])
        self.pending.append((step, names, values))
        if force or len(self.pending) >= self.every:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        rows = torch.stack([values for _, _, values in self.pending]).cpu().tolist()  # the one host sync
        pending, self.pending = self.pending, []
        for (step, names, _), row in zip(pending, rows):
            if not math.isfinite(row[-1]):
                raise Diverged(f"the loss became {row[-1]} at step {step - 1} ({self.kept()}); lower the learning rates or "
                               "the CFG scale")
            logs = dict(zip(names, row[:-1]))
            self.history.append({"step": step, **logs})
            if self.progress is not None:
                self.progress(step, self.total_steps, logs)
