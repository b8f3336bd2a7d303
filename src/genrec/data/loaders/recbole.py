"""RecBole atomic files: `<name>.inter` and `<name>.item` with typed headers (`item_id:token`)."""

from __future__ import annotations

import pandas as pd

from ..config import DataConfig
from ..errors import DataError
from ..raw import RawData
from . import FORMATS, reads_options
from .tables import Table, parse_numbers, read_table, require_file


def _read_atomic(path) -> Table:
    """Reads an atomic file and strips the `:type` suffix from each header. Atomic files do not
    quote: a `"` is part of the text (`"Weird Al" Yankovic`)."""
    table = read_table(path, sep="\t", quoted=False)
    renamed = {}
    for column in table.frame.columns:
        name, sep, kind = str(column).partition(":")
        if not sep:
            raise DataError(f"header '{column}' has no ':type' suffix (RecBole atomic files type every column)",
                            path=path, line=1, field=str(column))
        renamed[column] = name
    return table._replace(frame=table.frame.rename(columns=renamed))


@FORMATS.register("recbole")
@reads_options("stem", "min_rating")
def load_recbole(cfg: DataConfig) -> RawData:
    root = cfg.resolved_path()
    stem = cfg.options.get("stem", root.name)
    inter_path = require_file(root / f"{stem}.inter", f"RecBole atomic dataset '{stem}' expected in {root}")
    item_path = root / f"{stem}.item"

    table = _read_atomic(inter_path)
    inter = table.frame
    table.require_columns([cfg.user_column, cfg.item_column])
    table.require_values([cfg.user_column, cfg.item_column])
    notes = []
    if cfg.timestamp_column and cfg.timestamp_column in inter.columns:
        timestamps = parse_numbers(table, cfg.timestamp_column, dates=True)
    else:
        timestamps = pd.Series(range(len(inter)), dtype="float64")
        if cfg.timestamp_column:
            notes.append(f"no '{cfg.timestamp_column}' column in {inter_path.name}: file order is time order")
    min_rating = cfg.number_option("min_rating")
    keep = pd.Series(True, index=inter.index)
    if min_rating is not None:
        table.require_columns(["rating"])
        keep = parse_numbers(table, "rating") >= min_rating
        notes.append(f"dropped {int((~keep).sum())} interactions with rating < {min_rating}")
    interactions = pd.DataFrame({"user_id": inter[cfg.user_column], "item_id": inter[cfg.item_column],
                                 "timestamp": timestamps})[keep.to_numpy()]

    if item_path.is_file():
        item_table = _read_atomic(item_path)
        item_table.require_columns([cfg.item_column])
        item_table.require_values([cfg.item_column])
        items = item_table.frame.rename(columns={cfg.item_column: "item_id"})
    else:
        items = pd.DataFrame({"item_id": interactions["item_id"].unique()})
        notes.append(f"no {item_path.name}: items have no text")
    return RawData(interactions=interactions.reset_index(drop=True), items=items, source=str(root), notes=notes)
