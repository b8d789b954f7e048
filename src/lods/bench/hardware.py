"""The machine and the prior a benchmark ran on, for its summary: CPU, cores, memory, GPU, torch and Python."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def hardware_info(device: str = "cpu") -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "os": platform.platform()}
    try:
        info["cores_available"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    if str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def hardware_line(info: dict) -> str:
    text = f"{info['cpu']}, {info['cores']} cores"
    if info.get("cores_available") and info["cores_available"] != info["cores"]:
        text += f" ({info['cores_available']} available)"
    if info.get("memory_gb"):
        text += f", {info['memory_gb']} GiB RAM"
    if info.get("gpu"):
        text += f"; GPU {info['gpu']}"
    return text + f"; torch {info['torch']}, Python {info['python']}"


def prior_line(prior: str | None) -> str:
    from ..priors.embedded import prior_folder

    folder = prior_folder(prior or None)
    name = "the embedded prior" if prior is None else f"`{prior}`"
    meta = folder / "lods_prior.json"
    if folder.is_dir() and meta.exists():
        try:
            data = json.loads(meta.read_text())
        except (OSError, ValueError):
            data = {}
        bits = [f"{k} {data[k]}" for k in ("step",) if k in data]
        if bits:
            name += f" ({', '.join(bits)})"
    return name + f" at {folder}" if prior is None else name
