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
    """A benchmark's method spec, `NAME[+SWITCH...]`: a guidance and boolean settings switched on (a GuidanceConfig
    field or a field of the method's `Options`; `no_X` switches X off), e.g. "lods-embedding+shared_draw" →
    ("lods-embedding", {"shared_draw": True}), "lods-embedding+no_time_offset" → ("lods-embedding",
    {"method_options": {"time_offset": False}}). Apply them with `apply_switches`."""
    import dataclasses

    name, *switches = spec.split("+")
    klass = guidance_class(name)
    flags = {f.name for f in dataclasses.fields(GuidanceConfig) if f.type in (bool, "bool")}
    options = {f.name for f in dataclasses.fields(klass.Options) if f.type in (bool, "bool")} if klass.Options else set()
    out: dict = {}
    for switch in switches:
        field, value = (switch[3:], False) if switch.startswith("no_") else (switch, True)
        if field in flags:
            out[field] = value
        elif field in options:
            out.setdefault("method_options", {})[field] = value
        else:
            known = sorted(flags | options)
            raise UserError(f"unknown switch {switch!r} in method {spec!r}; switches: {', '.join(known)} (no_X: off)")
    return name, out


def apply_switches(config: GuidanceConfig, switches: dict) -> GuidanceConfig:
    """`config` with `split_method`'s switches set (method options merged into the config's)."""
    import dataclasses

    switches = dict(switches)
    options = switches.pop("method_options", {})
    return dataclasses.replace(config, **switches, method_options={**config.method_options, **options})


def build_guidance(name: str, prior, prompt: str, config: GuidanceConfig | None = None) -> Guidance:
    return guidance_class(name)(prior, prompt, config)


__all__ = ["GUIDANCES", "Guidance", "GuidanceConfig", "apply_switches", "build_guidance", "distillation_loss", "guidance_class", "split_method"]
