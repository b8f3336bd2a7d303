"""Format loaders: each turns files on disk into a RawData, registered by format name.

A loader is a function `load(cfg: DataConfig) -> RawData`, registered with
`@FORMATS.register(name)`; the `data.options` keys it reads are declared with
`@reads_options(...)` under it, and any other key is an error (a misspelt option would
otherwise be ignored). Importing this package registers every built-in format.
"""

from __future__ import annotations

from typing import Callable

from ...registry import Registry
from ..config import DataConfig
from ..errors import DataError
from ..raw import RawData

Loader = Callable[[DataConfig], RawData]
FORMATS: Registry[Loader] = Registry("data format")


def reads_options(*names: str) -> Callable[[Loader], Loader]:
    """Declares the `data.options` keys the decorated loader reads."""
    def declare(loader: Loader) -> Loader:
        loader.option_names = names
        return loader
    return declare


def load_raw(cfg: DataConfig) -> RawData:
    """Reads the raw dataset that `cfg` names, with the loader of its format."""
    loader = FORMATS.get(cfg.format)
    known = getattr(loader, "option_names", ())
    unknown = sorted(set(cfg.options) - set(known), key=str)
    if unknown:
        raise DataError(f"format '{cfg.format}' has no such option (its options: {', '.join(known) or 'none'})",
                        field=f"data.options.{unknown[0]}")
    return loader(cfg)


# Built-in formats register themselves on import.
from . import amazon, generic, mind, movielens, recbole, synthetic  # noqa: E402,F401
