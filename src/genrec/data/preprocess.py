"""Raw tables -> SequenceDataset: each step configurable, counted and logged; cached by config hash."""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import config_hash
from .config import DataConfig, cache_root
from .dataset import SequenceDataset
from .download import DOWNLOADS, download_files, download_incomplete, is_downloadable
from .errors import DataError
from .loaders import load_raw
from .raw import RawData

log = logging.getLogger(__name__)

# Bump when preprocessing changes meaning, so old caches are not reused.
PREPROCESS_VERSION = 1


def render_value(value) -> str:
    """One text field as a string: lists joined by ', ', category paths by ' > '."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (list, tuple, np.ndarray)):
        parts = [" > ".join(map(str, v)) if isinstance(v, (list, tuple, np.ndarray)) else render_value(v)
                 for v in value]
        return ", ".join(p for p in parts if p)
    return str(value).strip()


def render_item_text(items: pd.DataFrame, cfg: DataConfig) -> pd.Series:
    fields = cfg.text_fields if cfg.text_fields is not None else [c for c in items.columns if c != "item_id"]
    missing = [f for f in fields if f not in items.columns]
    if missing:
        raise DataError(f"text field not in the item table (fields are: "
                        f"{', '.join(c for c in items.columns if c != 'item_id')})",
                        path=cfg.resolved_path(), field=missing[0])
    rendered = [items[f].map(render_value) for f in fields]
    if not rendered:
        return pd.Series([""] * len(items), index=items.index)
    frame = pd.concat(rendered, axis=1)
    return frame.apply(lambda row: cfg.text_separator.join(v for v in row if v), axis=1)


def k_core(frame: pd.DataFrame, min_user: int, min_item: int) -> tuple[pd.DataFrame, int]:
    """Repeatedly drops users and items with too few interactions; returns (frame, rounds)."""
    rounds = 0
    while True:
        keep = np.ones(len(frame), dtype=bool)
        if min_user > 0:
            keep &= frame.groupby("user_id")["item_id"].transform("size").to_numpy() >= min_user
        if min_item > 0:
            keep &= frame.groupby("item_id")["user_id"].transform("size").to_numpy() >= min_item
        if keep.all():
            return frame, rounds
        frame = frame[keep]
        rounds += 1


def build_dataset(raw: RawData, cfg: DataConfig) -> SequenceDataset:
    steps = [f"loaded {len(raw.interactions)} interactions, {len(raw.items)} items from {raw.source}"]
    steps += raw.notes
    frame = raw.interactions.copy()
    frame["row"] = np.arange(len(frame))

    items = raw.items.set_index("item_id", drop=False)
    text = render_item_text(items, cfg)

    if cfg.dedup == "exact":
        before = len(frame)
        frame = frame.drop_duplicates(["user_id", "item_id", "timestamp"], keep="first")
        steps.append(f"dedup exact: dropped {before - len(frame)} repeated (user, item, timestamp) rows")
    elif cfg.dedup == "user_item":
        before = len(frame)
        frame = frame.sort_values(["timestamp", "row"], kind="stable").drop_duplicates(
            ["user_id", "item_id"], keep="first")
        steps.append(f"dedup user_item: dropped {before - len(frame)} repeated (user, item) rows")

    unknown = ~frame["item_id"].isin(items.index)
    if unknown.any():
        steps.append(f"{int(unknown.sum())} interactions ({frame.loc[unknown, 'item_id'].nunique()} items) "
                     f"name items absent from the item table: treated as items without text")

    # Items without text: policy applies before k-core so dropping them can cascade.
    has_text = frame["item_id"].map(text).fillna("").str.len() > 0
    no_text_items = frame.loc[~has_text, "item_id"].unique()
    if len(no_text_items):
        message = f"{len(no_text_items)} interacted items have no text"
        if cfg.missing_text == "error":
            raise DataError(f"{message} (e.g. {no_text_items[0]!r}); set data.missing_text=warn or drop",
                            path=cfg.resolved_path(), field="data.missing_text")
        if cfg.missing_text == "drop":
            frame = frame[has_text.to_numpy()]
            steps.append(f"{message}: dropped them and their interactions")
        else:  # warn (DataConfig checks the name)
            steps.append(f"{message}: kept with empty text")
            log.warning("%s: kept with empty text (data.missing_text=warn)", message)

    before_users, before_items, before = frame.user_id.nunique(), frame.item_id.nunique(), len(frame)
    frame, rounds = k_core(frame, cfg.min_user_interactions, cfg.min_item_interactions)
    steps.append(f"k-core (user >= {cfg.min_user_interactions}, item >= {cfg.min_item_interactions}, "
                 f"{rounds} rounds): dropped {before - len(frame)} interactions, "
                 f"{before_users - frame.user_id.nunique()} users, {before_items - frame.item_id.nunique()} items")
    if frame.empty:
        raise DataError(f"k-core filtering (min_user_interactions={cfg.min_user_interactions}, "
                        f"min_item_interactions={cfg.min_item_interactions}) removed every interaction; "
                        f"lower them", path=cfg.resolved_path(), field="data.min_user_interactions")

    # Chronological order within each user; file order breaks timestamp ties. Users keep
    # their order of first appearance in the file.
    frame["user_order"] = pd.factorize(frame["user_id"])[0]
    frame = frame.sort_values(["user_order", "timestamp", "row"], kind="stable")
    if cfg.max_history is not None:
        before = len(frame)
        position_from_end = frame.groupby("user_order").cumcount(ascending=False)
        frame = frame[(position_from_end < cfg.max_history).to_numpy()]
        steps.append(f"history cap {cfg.max_history}: dropped {before - len(frame)} older interactions")
    lengths = frame.groupby("user_order", sort=False)["item_id"].transform("size")
    short = lengths < cfg.min_sequence_length
    if short.any():
        steps.append(f"dropped {frame.loc[short, 'user_id'].nunique()} users with fewer than "
                     f"{cfg.min_sequence_length} interactions (leave-one-out needs train, valid and test)")
        frame = frame[~short.to_numpy()]
    if frame.empty:
        raise DataError(f"no user has at least {cfg.min_sequence_length} interactions after filtering",
                        path=cfg.resolved_path(), field="data.min_sequence_length")

    item_codes, item_ids = pd.factorize(frame["item_id"])
    user_codes, user_ids = pd.factorize(frame["user_id"])
    offsets = np.zeros(len(user_ids) + 1, dtype=np.int64)
    np.cumsum(np.bincount(user_codes, minlength=len(user_ids)), out=offsets[1:])
    item_list = [""] + list(item_ids)
    item_text = [""] + [str(text.get(i, "")) for i in item_ids]
    if "title" in items.columns:
        titles = [render_value(items["title"].get(i)) if i in items.index else "" for i in item_ids]
    else:
        titles = item_text[1:]
    titles = [t or i for t, i in zip(titles, item_ids)]
    dataset = SequenceDataset(name=cfg.name, item_ids=item_list, item_text=item_text, item_titles=[""] + titles,
                              user_ids=list(user_ids), offsets=offsets,
                              items=(item_codes + 1).astype(np.int64), log=steps)
    steps.append(f"result: {dataset.stats()}")
    return dataset


def source_signature(cfg: DataConfig) -> list:
    """Names, sizes and content digests of the raw files: edited data is re-processed, while a
    copy of the same files (new modification times) reuses the cache and every stage keyed on it."""
    root = cfg.resolved_path()
    if cfg.format == "synthetic" or not root.exists():
        return []
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return [(str(p.relative_to(root)) if p != root else p.name, p.stat().st_size, _file_digest(p))
            for p in files]


def _file_digest(path: Path) -> str:
    digest = hashlib.blake2b()
    with path.open("rb") as f:  # in 1 MiB pieces (hashlib.file_digest is Python >= 3.11)
        for piece in iter(lambda: f.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()[:32]


def prepare_dataset(cfg: DataConfig, cache: bool = True, cache_dir: str | Path | None = None) -> SequenceDataset:
    """Loads, preprocesses and caches the dataset `cfg` describes (reused when nothing changed)."""
    # A downloadable dataset is fetched, or an interrupted download finished, into the folder
    # the config reads, before the cache key is computed: the key hashes the files.
    if is_downloadable(cfg.name) and download_incomplete(cfg.name, cfg.resolved_path()):
        download_files(DOWNLOADS.get(cfg.name), cfg.resolved_path())
    key = config_hash(cfg, source_signature(cfg), PREPROCESS_VERSION)
    directory = Path(cache_dir) if cache_dir else cache_root() / "processed" / f"{cfg.name}-{key}"
    if cache and (directory / "meta.json").is_file():
        dataset = SequenceDataset.load(directory)
        log.info("dataset %s: reused processed cache %s", cfg.name, directory)
        return dataset
    dataset = build_dataset(load_raw(cfg), cfg)
    dataset.fingerprint = key
    for line in dataset.log:
        log.info("dataset %s: %s", cfg.name, line)
    if cache:
        dataset.save(directory)
    return dataset
