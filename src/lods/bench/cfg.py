"""The CFG sweep: SDS against LODS-embedding at s = 30, 100, 1000 and ∞ (1e6) on part of the world suite.

The paper's claim is about the CFG scale: SDS at a large s is pushed toward the CFG-sharpened distribution,
LODS's learned unconditional branch should not be. The sweep runs the quality benchmark (same run folders,
results.csv with a cfg column, summary.md, plots, including metric-against-s curves) at each scale.
"""

from __future__ import annotations

from .config import BenchConfig
from .stats import INF_CFG

CFG_SCALES = (30.0, 100.0, 1000.0, INF_CFG)
CFG_METHODS = ("sds", "lods-embedding")


def cfg_bench_config(**overrides) -> BenchConfig:
    """A BenchConfig for the sweep: single-object prompts, SDS and LODS-embedding, the four scales."""
    base = dict(suite="world", methods=list(CFG_METHODS), backbones=["gs"], categories=["single"],
                cfg_scales=list(CFG_SCALES), out="outputs/bench-cfg", title="CFG sweep")
    base.update({k: v for k, v in overrides.items() if v is not None})
    return BenchConfig(**base)
