"""Format loaders: each turns files on disk into a RawData, registered by format name.

A loader is a function `load(cfg: DataConfig) -> RawData`. Importing this package
registers every built-in format.
"""

from __future__ import annotations

from typing import Callable

from ...registry import Registry
from ..config import DataConfig
from ..raw import RawData

Loader = Callable[[DataConfig], RawData]
FORMATS: Registry[Loader] = Registry("data format")


def load_raw(cfg: DataConfig) -> RawData:
    """Reads the raw dataset that `cfg` names, with the loader of its format."""
    return FORMATS.get(cfg.format)(cfg)


# Built-in formats register themselves on import.
from . import amazon, generic, mind, movielens, recbole, synthetic  # noqa: E402,F401
