"""Where LODS's extra cost goes: the UNet calls of one guidance step, timed alone on the embedded prior.

    LODS_THREADS=1 python scripts/bench_lods_parts.py

Prints each part's median time relative to one no-grad call on 2B samples (what SDS costs): the batched no-grad
call with a LoRA adapter at per-sample scales, and the grad-enabled call on B samples with its backward, into the
embedding and into the LoRA. Parts are interleaved, so a loaded machine slows them alike.
"""

from __future__ import annotations

import os
import statistics
import time

import torch

from lods.bench.speed import clone_prior
from lods.priors import lora
from lods.priors.prior import Prior


def main(rounds: int = 12, batch: int = 4) -> None:
    torch.set_num_threads(int(os.environ.get("LODS_THREADS", "1")))
    prior = Prior.load(None)
    with_lora = clone_prior(prior)
    name = lora.add_lora(with_lora.unet, "parts", rank=4)
    emb = prior.encode_text(["a red cube"])
    z = torch.randn(2 * batch, 3, prior.image_size, prior.image_size)
    t = torch.full((2 * batch,), 500)
    pair = emb.expand(2 * batch, -1, -1)
    learned = emb.clone().requires_grad_(True)
    scales = torch.cat([torch.zeros(batch), torch.full((batch,), 0.5)])

    def no_grad(p, **kw):
        with torch.no_grad():
            p.predict_noise(z, t, pair, **kw)

    def grad_embedding():
        prior.predict_noise(z[:batch], t[:batch], learned.expand(batch, -1, -1)).square().mean().backward()

    def grad_lora():
        with_lora.predict_noise(z[:batch], t[:batch], pair[:batch], lora_scale=0.5, adapter=name).square().mean().backward()

    parts = {
        "no-grad call, 2B samples (SDS)": lambda: no_grad(prior),
        "no-grad call, 2B, LoRA at per-sample scales": lambda: no_grad(with_lora, lora_scale=scales, adapter=name),
        "grad call + backward, B, into the embedding": grad_embedding,
        "grad call + backward, B, into the LoRA": grad_lora,
    }
    times = {k: [] for k in parts}
    for _ in range(rounds):
        for k, fn in parts.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    base = statistics.median(times["no-grad call, 2B samples (SDS)"])
    for k, v in times.items():
        print(f"{k:48s} {1000 * statistics.median(v):8.1f} ms  {statistics.median(v) / base:.2f}×")


if __name__ == "__main__":
    main()
