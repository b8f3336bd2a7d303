"""The contract between format loaders and preprocessing: two plain tables."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class RawData:
    """What every loader returns, before any filtering.

    interactions: columns user_id (str), item_id (str), timestamp (float64; the row's
        position in the file when the source has none). Row order is file order, which
        breaks timestamp ties.
    items: column item_id (str) plus one column per text field; a value is a string,
        a list of strings (or of lists of strings, e.g. category paths), or missing.
    notes: what the loader skipped or repaired, with counts, for the preprocessing log.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    source: str
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        missing = {"user_id", "item_id", "timestamp"} - set(self.interactions.columns)
        if missing:
            raise ValueError(f"loader for {self.source} returned interactions without {sorted(missing)}")
        if "item_id" not in self.items.columns:
            raise ValueError(f"loader for {self.source} returned items without item_id")
        self.interactions = self.interactions[["user_id", "item_id", "timestamp"]].astype(
            {"user_id": str, "item_id": str, "timestamp": "float64"})
        self.items = self.items.astype({"item_id": str}).drop_duplicates("item_id", keep="first")

    @property
    def text_columns(self) -> list[str]:
        return [c for c in self.items.columns if c != "item_id"]
