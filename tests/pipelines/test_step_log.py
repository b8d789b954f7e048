"""StepLog: losses read back in batches (CUDA) or every step (CPU); a non-finite total stops the run at its step."""

import pytest
import torch

from lods.errors import Diverged
from lods.pipelines.step_log import SYNC_EVERY_CUDA, StepLog


def terms(v):
    return {"loss_distill": torch.tensor(v), "loss_learned": torch.tensor(2 * v)}


def test_cpu_reads_every_step_and_reports_progress():
    history, seen = [], []
    log = StepLog(history, torch.device("cpu"), lambda s, n, logs: seen.append((s, logs["loss_distill"])), total_steps=3)
    for step in (1, 2, 3):
        log.add(step, terms(float(step)), torch.tensor(3.0 * step))
        assert len(history) == step  # nothing pending on the CPU
    assert seen == [(1, 1.0), (2, 2.0), (3, 3.0)]
    assert history[1] == {"step": 2, "loss_distill": 2.0, "loss_learned": 4.0}


def test_an_accelerator_reads_in_batches_and_on_demand():
    history = []
    log = StepLog(history, torch.device("meta"))  # any non-CPU device batches its reads
    for step in range(1, SYNC_EVERY_CUDA):
        log.pending.append((step, ["loss_distill"], torch.tensor([1.0, 1.0])))
    assert history == []
    log.add(SYNC_EVERY_CUDA, {"loss_distill": torch.tensor(1.0)}, torch.tensor(1.0))
    assert [h["step"] for h in history] == list(range(1, SYNC_EVERY_CUDA + 1))
    log.add(SYNC_EVERY_CUDA + 1, {"loss_distill": torch.tensor(1.0)}, torch.tensor(1.0), force=True)  # a checkpoint step
    assert history[-1]["step"] == SYNC_EVERY_CUDA + 1


def test_a_non_finite_total_raises_diverged_with_its_step():
    log = StepLog([], torch.device("cpu"), kept=lambda: "nothing was checkpointed")
    log.add(1, terms(1.0), torch.tensor(1.0))
    with pytest.raises(Diverged, match="at step 1 .*nothing was checkpointed"):
        log.add(2, terms(1.0), torch.tensor(float("nan")))
