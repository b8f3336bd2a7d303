"""The generic format: an interactions table plus an item table, column names configurable."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import DataConfig
from ..errors import DataError
from ..raw import RawData
from . import FORMATS
from .tables import parse_timestamps, read_table, require_columns, require_file


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

    frame = read_table(inter_path)
    needed = [cfg.user_column, cfg.item_column] + ([cfg.timestamp_column] if cfg.timestamp_column else [])
    require_columns(frame, needed, inter_path)
    header = 0 if inter_path.name.removesuffix(".gz").endswith((".parquet", ".jsonl", ".json")) else 1
    for column in (cfg.user_column, cfg.item_column):
        missing = frame[column].isna()
        if missing.any():
            raise DataError("missing", path=inter_path, line=int(np.flatnonzero(missing)[0]) + 1 + header,
                            field=column)
    if cfg.timestamp_column:
        timestamps = parse_timestamps(frame[cfg.timestamp_column], inter_path, cfg.timestamp_column, header)
    else:
        timestamps = pd.Series(np.arange(len(frame), dtype="float64"))
    interactions = pd.DataFrame({"user_id": frame[cfg.user_column].astype(str),
                                 "item_id": frame[cfg.item_column].astype(str),
                                 "timestamp": timestamps.to_numpy()})

    items = read_table(items_path)
    item_key = cfg.item_column if cfg.item_column in items.columns else "item_id"
    require_columns(items, [item_key], items_path)
    items = items.rename(columns={item_key: "item_id"})
    return RawData(interactions=interactions, items=items, source=str(root))
