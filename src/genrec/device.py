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


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's marketing name ("AMD EPYC 9B45", "Intel(R) Xeon(R) Processor"); `platform` only
    says "x86_64" on Linux."""
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass  # not Linux: fall back to what platform knows
    return platform.processor() or platform.machine()


def describe_machine(device: torch.device | None = None) -> dict:
    """What a result was measured on: CPU, cores, torch threads, versions and, on CUDA, the GPU."""
    import torch  # noqa: PLC0415

    info = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__}
    if device is not None:
        info["device"] = str(device)
        info["gpu"] = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return info
