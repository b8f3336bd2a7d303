"""Where a job runs (the device a config names) and what machine ran it.

One place for both, so every stage reads `device: auto | cpu | cuda | cuda:1 ...` the same way and
every run folder and benchmark JSON names its machine the same way: the same recipe and seeds
trained at different speeds and to different numbers on two CPUs (docs/results.md), so a result
without its CPU cannot be compared. torch is imported inside the functions, so the faiss-only
tokenizers load without it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

from .config import ConfigError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str | None, fallback_to_cpu: bool = False) -> torch.device:
    """`auto` (or nothing) is CUDA when there is one, else the CPU. A CUDA device on a machine
    without CUDA is a ConfigError, or the CPU with `fallback_to_cpu` (weights fitted on a GPU,
    loaded on a laptop)."""
    import torch  # noqa: PLC0415

    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device '{name}' is not a torch device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        if fallback_to_cpu:
            return torch.device("cpu")
        raise ConfigError(f"device '{name}' requested but CUDA is not available; use device=auto or cpu")
    return device


def synchronize(device: torch.device) -> None:
    """Waits for the GPU's queued work, so a timer around it measures the work, not its launch."""
    import torch  # noqa: PLC0415

    if device.type == "cuda":
        torch.cuda.synchronize(device)


# Instruction sets that decide how fast bf16 training runs on a CPU (docs/results.md: 1.4-1.7x).
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def describe_cpu(cpuinfo: str | Path = "/proc/cpuinfo") -> dict:
    """The CPU's marketing name ("AMD EPYC 9B45", "Intel(R) Xeon(R) Processor"), its
    family/model/stepping and its bf16-relevant instruction sets. A VM often shows only "AMD EPYC":
    the family and model then tell, say, Zen 4 (family 25, model 17) from Zen 5 (family 26). Off Linux, the name
    is what `platform` knows and the rest is None."""
    fields: dict[str, str] = {}
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if not key.strip() and fields:
                break  # the first processor's block is enough: a VM's cores are alike
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass  # not Linux: fall back to what platform knows
    ident = [f"{name} {fields[key]}" for name, key in
             (("family", "cpu family"), ("model", "model"), ("stepping", "stepping")) if fields.get(key)]
    flags = fields.get("flags", "").split()
    return {"cpu": fields.get("model name") or platform.processor() or platform.machine(),
            "cpu_id": " ".join(ident) or None,
            "cpu_flags": [f for f in SPEED_FLAGS if f in flags] if flags else None}


def describe_machine(device: torch.device | None = None) -> dict:
    """What a result was measured on: CPU, cores, torch threads, versions and, on CUDA, the GPU."""
    import torch  # noqa: PLC0415

    info = {**describe_cpu(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__}
    if device is not None:
        info["device"] = str(device)
        info["gpu"] = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return info
