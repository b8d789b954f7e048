"""Atomic writes and safetensors checkpoints (tensors + JSON metadata; never pickle)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load as load_bytes, save as save_bytes

from ..errors import UserError

TMP_SUFFIX = ".tmp"  # every temp file is `.NAME.<random>.tmp` beside its target (see `clean_temp_files`)


def tmp_path(path: Path, suffix: str = TMP_SUFFIX) -> Path:
    """A new empty temp file `.NAME.<random>SUFFIX` beside `path`, with the permissions of an ordinary new file."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)  # mkstemp makes 0600; the final file gets the usual permissions
    return Path(name)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def atomic_save(path: Path, save_fn) -> None:
    """Call `save_fn(tmp_path)` then rename onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    try:
        save_fn(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def optimizer_to_tensors(opt: torch.optim.Optimizer, prefix: str = "optimizer") -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for k, v in state.items():
            t = v if isinstance(v, torch.Tensor) else torch.tensor(v)
            tensors[f"{prefix}/{idx}/{k}"] = t.detach().contiguous().cpu()
    return tensors, {"param_groups": sd["param_groups"]}


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict, meta: dict, prefix: str = "optimizer") -> None:
    state: dict = {}
    for name, t in tensors.items():
        if not name.startswith(prefix + "/"):
            continue
        _, idx, key = name.split("/", 2)
        state.setdefault(int(idx), {})[key] = t
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})


class CorruptCheckpoint(UserError):
    """A checkpoint file that is truncated, garbage or not written by lods."""


def save_checkpoint(path: Path, tensors: dict, meta: dict) -> None:
    """One safetensors file holding tensors and a JSON metadata blob, written atomically.

    Serialised in memory and written by Python, so a full disk is an ordinary OSError (ENOSPC)."""
    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_bytes(path, save_bytes(flat, metadata={"lods": json.dumps(meta, default=_json_default)}))


def load_checkpoint(path: Path) -> tuple[dict, dict]:
    """(tensors, meta) of a lods checkpoint; CorruptCheckpoint when it cannot be read whole."""
    path = Path(path)
    data = path.read_bytes()
    try:
        tensors = load_bytes(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_len])
        meta = json.loads(header["__metadata__"]["lods"])
    except Exception as e:  # safetensors raises its own error types; any failure here means an unreadable file
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise CorruptCheckpoint(f"{path} is not a readable lods checkpoint (truncated or damaged: {reason})") from None
    return tensors, meta


def clean_temp_files(folder: Path, recursive: bool = True) -> list[Path]:
    """Remove the temp files (and staging folders) a killed write leaves: `.NAME.<random>.tmp`, `.NAME.<random>.mp4`."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in sorted(folder.rglob(".*") if recursive else folder.glob(".*")):
        if not is_temp_name(p.name) or any(q in removed for q in p.parents):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def is_temp_name(name: str) -> bool:
    """`.NAME.XXXXXXXX.SUFFIX` as written by `_tmp_path` and the turntable writer (mkstemp's 8 random characters)."""
    import re

    return re.fullmatch(r"\.[^/]+\.[a-z0-9_]{8}\.(tmp|mp4)", name) is not None
