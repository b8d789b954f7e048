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


def _parse_value(owner: type, field: str, switch: str, spec: str):
    """A `FIELD=VALUE` switch's value, parsed and type-checked as `--set` does (config.apply_sets)."""
    from ..config import apply_sets
    from ..errors import ConfigError

    if switch.split("=", 1)[1].lower() == "none":
        switch = f"{field}=null"  # `none` spells no value, as in Python
    try:
        return getattr(apply_sets(owner(), [switch]), field)
    except ConfigError as e:
        raise UserError(f"bad value in {switch!r} of method {spec!r}: {e}") from None


def split_method(spec: str) -> tuple[str, dict]:
    """A benchmark's method spec, `NAME[+SWITCH...]`: a guidance and settings changed from the preset (a
    GuidanceConfig field or a field of the method's `Options`). A switch is a boolean `X` (on) or `no_X` (off),
    or `X=VALUE` for a number or a word, e.g. "lods-embedding+shared_draw" → ("lods-embedding",
    {"shared_draw": True}), "lods-embedding+no_time_offset" → ("lods-embedding", {"method_options":
    {"time_offset": False}}), "lods-lora+lora_targets=all+lora_lr=3e-4". Apply them with `apply_switches`."""
    import dataclasses

    name, *switches = spec.split("+")
    klass = guidance_class(name)
    skip = ("method_options", "guidance_scale")  # the scale is the entry's @S
    config_fields = {f.name: str(f.type) for f in dataclasses.fields(GuidanceConfig) if f.name not in skip}
    option_fields = {f.name: str(f.type) for f in dataclasses.fields(klass.Options)} if klass.Options else {}
    out: dict = {}
    for switch in switches:
        if "=" in switch:
            field, value = switch.split("=", 1)[0], None
        else:
            field, value = (switch[3:], False) if switch.startswith("no_") else (switch, True)
        kind = config_fields.get(field, option_fields.get(field))
        if kind is None or (value is not None) != (kind == "bool"):
            known = sorted(f for f, k in {**config_fields, **option_fields}.items() if k == "bool")
            raise UserError(f"unknown switch {switch!r} in method {spec!r}; switches: {', '.join(known)} (no_X: off), "
                            "or FIELD=VALUE for a setting")
        if value is None:
            value = _parse_value(GuidanceConfig if field in config_fields else klass.Options, field, switch, spec)
        if field in config_fields:
            out[field] = value
        else:
            out.setdefault("method_options", {})[field] = value
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
