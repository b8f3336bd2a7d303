"""Typed configuration of the data stage (what to load and how to preprocess it)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError


def data_root() -> Path:
    """Where named datasets live: $GENREC_DATA_DIR, else ~/.cache/genrec/data."""
    env = os.environ.get("GENREC_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "genrec" / "data"


def cache_root() -> Path:
    """Where derived artefacts (processed data, embeddings) are cached: $GENREC_CACHE_DIR."""
    env = os.environ.get("GENREC_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "genrec" / "cache"


DEDUP_MODES = ("exact", "user_item", "none")
MISSING_TEXT_POLICIES = ("warn", "drop", "error")


@dataclass
class DataConfig:
    """Which dataset to read, in which format, and every preprocessing step applied to it."""

    name: str = "synthetic"
    # Loader name from genrec.data.loaders.FORMATS (generic, recbole, amazon2014, ...).
    format: str = "synthetic"
    # Folder (or file, for some formats) holding the raw files; default $GENREC_DATA_DIR/<name>.
    path: str | None = None
    # Generic format: file names inside `path` and the column names they use.
    interactions_file: str = "interactions.csv"
    items_file: str = "items.jsonl"
    user_column: str = "user_id"
    item_column: str = "item_id"
    timestamp_column: str | None = "timestamp"
    # Item text: which fields, in which order, are joined into one string per item
    # (None = every text field of the items file, in file order).
    text_fields: list[str] | None = None
    text_separator: str = ". "
    # Preprocessing, applied in this order and recorded in the processed data's log.
    dedup: str = "exact"  # exact (same user, item, timestamp) | user_item (keep first) | none
    min_user_interactions: int = 5  # k-core; 0 disables
    min_item_interactions: int = 5
    max_history: int | None = None  # keep each user's most recent N interactions
    min_sequence_length: int = 3  # leave-one-out needs train + valid + test
    missing_text: str = "warn"  # warn (keep, empty text) | drop (items and their interactions) | error
    # Format-specific options (e.g. amazon: category; movielens: min_rating).
    options: dict = field(default_factory=dict)

    def __post_init__(self):  # fail when the config is read, not after the data is loaded
        if self.dedup not in DEDUP_MODES:
            raise ValueError(f"unknown data.dedup {self.dedup!r} ({', '.join(DEDUP_MODES)})")
        if self.missing_text not in MISSING_TEXT_POLICIES:
            raise ValueError(f"unknown data.missing_text {self.missing_text!r} ({', '.join(MISSING_TEXT_POLICIES)})")
        if self.min_sequence_length < 3:
            raise ValueError(f"data.min_sequence_length must be >= 3 (leave-one-out holds out a validation "
                             f"and a test item and needs one to train on), got {self.min_sequence_length}")
        if self.max_history is not None and self.max_history < self.min_sequence_length:
            raise ValueError(f"data.max_history ({self.max_history}) must be >= data.min_sequence_length "
                             f"({self.min_sequence_length}), or every user would be dropped")
        for name in ("min_user_interactions", "min_item_interactions"):
            if getattr(self, name) < 0:
                raise ValueError(f"data.{name} must be >= 0 (0 disables the k-core filter), got {getattr(self, name)}")

    def number_option(self, name: str) -> float | None:
        """`options[name]` as a number, None when it is not set."""
        value = self.options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise DataError(f"expected a number, got {value!r}", field=f"data.options.{name}")
        return value

    def resolved_path(self) -> Path:
        return Path(self.path).expanduser() if self.path else data_root() / self.name
