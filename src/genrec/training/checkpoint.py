"""Checkpoints written atomically (temp file + rename): a killed run never leaves a torn file."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch


def atomic_save(obj, path: str | Path) -> None:
    """torch.save, or np.save for a numpy array, to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(obj, np.ndarray):
                np.save(handle, obj)
            else:
                torch.save(obj, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(text: str, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def load_weights(model: torch.nn.Module, state: dict, source: str | Path) -> None:
    """model.load_state_dict(state), failing with one line that names `source` when the saved
    weights are not this model's (another architecture, or a file written by an older genrec)."""
    try:
        result = model.load_state_dict(state, strict=False)
        problems = [f"{len(keys)} {kind} parameter(s), e.g. {', '.join(keys[:3])}"
                    for kind, keys in (("missing", result.missing_keys), ("unexpected", result.unexpected_keys))
                    if keys]
    except RuntimeError as exc:  # shapes differ: torch lists one "size mismatch for ..." line per tensor
        problems = [line.strip().rstrip(".") for line in str(exc).splitlines() if "size mismatch" in line][:3]
        if not problems:
            raise
    if problems:
        raise ValueError(f"{source}: the saved weights do not fit the {type(model).__name__} that its config "
                         f"builds ({'; '.join(problems)}); written by another genrec version or config? "
                         "Train it again")


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
