"""Score-distillation guidance methods behind one interface; add a method with one file and one line here."""

from __future__ import annotations

from ..errors import UserError
from .base import Guidance, GuidanceConfig, distillation_loss
from .asd import ASD
from .csd import CSD
from .ism import ISM
from .lods_embedding import LODSEmbedding
from .lods_lora import LODSLoRA
from .nfsd import NFSD
from .sdi import SDI
from .sds import SDS
from .vsd import VSD

GUIDANCES: dict[str, type[Guidance]] = {
    "sds": SDS,
    "csd": CSD,
    "lods-embedding": LODSEmbedding,
    "lods-lora": LODSLoRA,
    "vsd": VSD,
    "ism": ISM,
    "sdi": SDI,
    "nfsd": NFSD,
    "asd": ASD,
}


def guidance_class(name: str) -> type[Guidance]:
    if name not in GUIDANCES:
        raise UserError(f"unknown guidance {name!r}; choose one of: {', '.join(GUIDANCES)}")
    return GUIDANCES[name]


def split_method(spec: str) -> tuple[str, dict]:
    """A benchmark's method spec, `NAME[+SWITCH...]`: a guidance and boolean GuidanceConfig fields switched on,
    e.g. "lods-embedding+shared_draw" → ("lods-embedding", {"shared_draw": True})."""
    import dataclasses

    name, *switches = spec.split("+")
    guidance_class(name)
    flags = {f.name for f in dataclasses.fields(GuidanceConfig) if f.type in (bool, "bool")}
    for switch in switches:
        if switch not in flags:
            raise UserError(f"unknown switch {switch!r} in method {spec!r}; switches: {', '.join(sorted(flags))}")
    return name, {switch: True for switch in switches}


def build_guidance(name: str, prior, prompt: str, config: GuidanceConfig | None = None) -> Guidance:
    return guidance_class(name)(prior, prompt, config)


__all__ = ["GUIDANCES", "Guidance", "GuidanceConfig", "build_guidance", "distillation_loss", "guidance_class", "split_method"]
