"""RecBole atomic files: `<name>.inter` and `<name>.item` with typed headers (`item_id:token`)."""

from __future__ import annotations

import pandas as pd

from ..config import DataConfig
from ..errors import DataError
from ..raw import RawData
from . import FORMATS
from .tables import parse_timestamps, read_table, require_columns, require_file


def _read_atomic(path) -> pd.DataFrame:
    """Reads an atomic file and strips the `:type` suffix from each header."""
    frame = read_table(path, sep="\t")
    renamed = {}
    for column in frame.columns:
        name, sep, kind = str(column).partition(":")
        if not sep:
            raise DataError(f"header '{column}' has no ':type' suffix (RecBole atomic files type every column)",
                            path=path, line=1, field=str(column))
        renamed[column] = name
    return frame.rename(columns=renamed)


@FORMATS.register("recbole")
def load_recbole(cfg: DataConfig) -> RawData:
    root = cfg.resolved_path()
    stem = cfg.options.get("stem", root.name)
    inter_path = require_file(root / f"{stem}.inter", f"RecBole atomic dataset '{stem}' expected in {root}")
    item_path = root / f"{stem}.item"

    inter = _read_atomic(inter_path)
    require_columns(inter, [cfg.user_column, cfg.item_column], inter_path)
    if cfg.timestamp_column and cfg.timestamp_column in inter.columns:
        timestamps = parse_timestamps(inter[cfg.timestamp_column], inter_path, cfg.timestamp_column)
    else:
        timestamps = pd.Series(range(len(inter)), dtype="float64")
    notes = []
    min_rating = cfg.options.get("min_rating")
    keep = pd.Series(True, index=inter.index)
    if min_rating is not None:
        require_columns(inter, ["rating"], inter_path)
        keep = pd.to_numeric(inter["rating"]) >= float(min_rating)
        notes.append(f"dropped {int((~keep).sum())} interactions with rating < {min_rating}")
    interactions = pd.DataFrame({"user_id": inter[cfg.user_column], "item_id": inter[cfg.item_column],
                                 "timestamp": timestamps})[keep.to_numpy()]

    if item_path.is_file():
        items = _read_atomic(item_path)
        require_columns(items, [cfg.item_column], item_path)
        items = items.rename(columns={cfg.item_column: "item_id"})
    else:
        items = pd.DataFrame({"item_id": interactions["item_id"].unique()})
        notes.append(f"no {item_path.name}: items have no text")
    return RawData(interactions=interactions.reset_index(drop=True), items=items, source=str(root), notes=notes)
