"""The generic format: an interactions table plus an item table, column names configurable."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import DataConfig
from ..errors import DataError
from ..raw import RawData
from . import FORMATS
from .tables import parse_numbers, read_table, require_file


@FORMATS.register("generic")
def load_generic(cfg: DataConfig) -> RawData:
    """interactions.{csv,tsv,parquet} (user, item[, timestamp]) + items.{jsonl,csv,parquet}."""
    root = cfg.resolved_path()
    if not root.exists():
        raise DataError(
            f"dataset folder not found; put {cfg.interactions_file} and {cfg.items_file} there "
            f"or set data.path (GENREC_DATA_DIR is where named datasets are looked up)", path=root)
    inter_path = require_file(root / cfg.interactions_file)
    items_path = require_file(root / cfg.items_file)

    table = read_table(inter_path)
    needed = [cfg.user_column, cfg.item_column] + ([cfg.timestamp_column] if cfg.timestamp_column else [])
    table.require_columns(needed)
    table.require_values([cfg.user_column, cfg.item_column])
    if cfg.timestamp_column:
        timestamps = parse_numbers(table, cfg.timestamp_column, dates=True)
    else:
        timestamps = pd.Series(np.arange(len(table.frame), dtype="float64"))
    interactions = pd.DataFrame({"user_id": table.frame[cfg.user_column].astype(str),
                                 "item_id": table.frame[cfg.item_column].astype(str),
                                 "timestamp": timestamps.to_numpy()})

    item_table = read_table(items_path)
    item_key = cfg.item_column if cfg.item_column in item_table.frame.columns else "item_id"
    item_table.require_columns([item_key])
    item_table.require_values([item_key])  # a missing id would also turn integer ids into floats
    items = item_table.frame.rename(columns={item_key: "item_id"})
    return RawData(interactions=interactions, items=items, source=str(root))
