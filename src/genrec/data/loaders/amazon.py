"""Amazon review data (McAuley et al.), releases 2014, 2018 and 2023, as published.

All three releases are a reviews file plus a metadata file per category; they differ in
file names, field names, timestamp units and how the metadata lines are encoded. Each
release is therefore described by a `_Release` and read by the same code.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd

from ..config import DataConfig
from ..errors import DataError
from ..raw import RawData
from . import FORMATS, reads_options
from .tables import iter_json_lines, iter_record_lines


def _iter_literal_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """Yields (line number, dict) from a file of Python-literal lines (the 2014 metadata
    uses single quotes, so it is not JSON). literal_eval never executes code."""
    return iter_record_lines(path, ast.literal_eval, "Python literal", "a dict literal")


@dataclass(frozen=True)
class _Release:
    """File naming and field names of one release of the Amazon data."""

    reviews_name: str  # reviews file for a category, without the optional .gz
    meta_name: str
    reviews_pattern: str  # regex over file names; group 'category'
    user: str
    item: str
    time: str
    seconds_per_time_unit: float
    meta_item: str
    # (text column in RawData.items, field in the metadata); columns are shared by all
    # releases so one `text_fields` config works for any of them.
    meta_fields: tuple[tuple[str, str], ...]
    read_meta: Callable[[Path], Iterator[tuple[int, dict]]]


_RELEASES = {
    "amazon2014": _Release(
        reviews_name="reviews_{}_5.json", meta_name="meta_{}.json",
        reviews_pattern=r"reviews_(?P<category>.+)_5\.json(\.gz)?",
        user="reviewerID", item="asin", time="unixReviewTime", seconds_per_time_unit=1.0,
        meta_item="asin",
        meta_fields=(("title", "title"), ("brand", "brand"), ("categories", "categories"),
                     ("description", "description"), ("price", "price")),
        read_meta=_iter_literal_lines),
    "amazon2018": _Release(
        reviews_name="{}_5.json", meta_name="meta_{}.json",
        # `reviews_` files are the 2014 release, `meta_` files are metadata.
        reviews_pattern=r"(?!reviews_|meta_)(?P<category>.+)_5\.json(\.gz)?",
        user="reviewerID", item="asin", time="unixReviewTime", seconds_per_time_unit=1.0,
        meta_item="asin",
        meta_fields=(("title", "title"), ("brand", "brand"), ("categories", "category"),
                     ("description", "description"), ("features", "feature"), ("price", "price")),
        read_meta=iter_json_lines),
    "amazon2023": _Release(
        reviews_name="{}.jsonl", meta_name="meta_{}.jsonl",
        reviews_pattern=r"(?!meta_)(?P<category>.+)\.jsonl(\.gz)?",
        # parent_asin groups colour/size variants into one product, as the release advises.
        user="user_id", item="parent_asin", time="timestamp", seconds_per_time_unit=1e-3,
        meta_item="parent_asin",
        meta_fields=(("title", "title"), ("brand", "store"), ("categories", "categories"),
                     ("description", "description"), ("features", "features"), ("price", "price")),
        read_meta=iter_json_lines),
}


def _find(root: Path, name: str) -> Path | None:
    """The file `name` in `root`, gzipped or not (gzipped preferred: that is how it ships)."""
    for candidate in (root / f"{name}.gz", root / name):
        if candidate.is_file():
            return candidate
    return None


def _reviews_file(root: Path, release: _Release, category: str | None) -> tuple[Path, str]:
    """The reviews file and its category: from options.category, else the only one present."""
    if not root.is_dir():
        raise DataError("dataset folder not found (set data.path, or download it with "
                        "`genrec download`)", path=root)
    pattern = re.compile(release.reviews_pattern)
    found = sorted({m.group("category") for p in root.iterdir() if (m := pattern.fullmatch(p.name))})
    if category is None:
        if len(found) != 1:
            listing = ", ".join(found) if found else "none"
            raise DataError(f"cannot tell which category to load: files matching "
                            f"{release.reviews_name.format('<Category>')}[.gz] are for {listing}; "
                            f"set data.options.category", path=root)
        category = found[0]
    path = _find(root, release.reviews_name.format(category))
    if path is None:
        raise DataError(f"no {release.reviews_name.format(category)}[.gz] for category '{category}' "
                        f"(categories present: {', '.join(found) or 'none'})", path=root)
    return path, category


def _clean(value):
    """Strips strings and drops empty values, recursively (lists of category paths too);
    numbers such as prices become strings so every text field is text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, list):
        cleaned = [c for c in map(_clean, value) if c is not None]
        return cleaned or None
    return str(value)


def _read_reviews(path: Path, release: _Release) -> pd.DataFrame:
    users, items, times = [], [], []
    for number, record in iter_json_lines(path):
        for field in (release.user, release.item, release.time):
            if record.get(field) in (None, ""):
                raise DataError("missing", path=path, line=number, field=field)
        try:
            seconds = float(record[release.time]) * release.seconds_per_time_unit
        except (TypeError, ValueError):
            raise DataError(f"not a number: {record[release.time]!r}", path=path, line=number,
                            field=release.time) from None
        users.append(str(record[release.user]))
        items.append(str(record[release.item]))
        times.append(seconds)
    return pd.DataFrame({"user_id": users, "item_id": items, "timestamp": times})


def _read_items(path: Path, release: _Release, reviewed: list[str], notes: list[str]) -> pd.DataFrame:
    """Text of the reviewed items, in order of first review; metadata of other items is skipped."""
    wanted = set(reviewed)
    meta: dict[str, dict] = {}
    unreviewed = duplicates = 0
    for number, record in release.read_meta(path):
        item = record.get(release.meta_item)
        if item in (None, ""):
            raise DataError("missing", path=path, line=number, field=release.meta_item)
        item = str(item)
        if item not in wanted:
            unreviewed += 1
        elif item in meta:
            duplicates += 1
        else:
            meta[item] = {column: _clean(record.get(field)) for column, field in release.meta_fields}
    without_meta = len(wanted) - len(meta)
    if unreviewed:
        notes.append(f"dropped {unreviewed} metadata entries of items that were never reviewed")
    if duplicates:
        notes.append(f"skipped {duplicates} duplicate metadata entries (kept the first per item)")
    if without_meta:
        notes.append(f"{without_meta} reviewed items have no metadata entry (kept, without text)")
    columns = ["item_id"] + [column for column, _ in release.meta_fields]
    return pd.DataFrame([{"item_id": item, **meta.get(item, {})} for item in reviewed], columns=columns)


def _load(cfg: DataConfig, release_name: str) -> RawData:
    release = _RELEASES[release_name]
    root = cfg.resolved_path()
    reviews_path, category = _reviews_file(root, release, cfg.options.get("category"))
    meta_path = _find(root, release.meta_name.format(category))
    if meta_path is None:
        raise DataError(f"metadata file {release.meta_name.format(category)}[.gz] not found next to "
                        f"{reviews_path.name}; item text comes from it", path=root)
    interactions = _read_reviews(reviews_path, release)
    notes: list[str] = []
    reviewed = list(dict.fromkeys(interactions["item_id"]))
    items = _read_items(meta_path, release, reviewed, notes)
    return RawData(interactions=interactions, items=items, source=str(reviews_path), notes=notes)


@FORMATS.register("amazon2014")
@reads_options("category")
def load_amazon2014(cfg: DataConfig) -> RawData:
    """reviews_<Cat>_5.json.gz (JSON lines) + meta_<Cat>.json.gz (Python-literal lines)."""
    return _load(cfg, "amazon2014")


@FORMATS.register("amazon2018")
@reads_options("category")
def load_amazon2018(cfg: DataConfig) -> RawData:
    """<Cat>_5.json.gz + meta_<Cat>.json.gz, both JSON lines."""
    return _load(cfg, "amazon2018")


@FORMATS.register("amazon2023")
@reads_options("category")
def load_amazon2023(cfg: DataConfig) -> RawData:
    """<Cat>.jsonl[.gz] + meta_<Cat>.jsonl[.gz]; items are parent_asin, timestamps in ms."""
    return _load(cfg, "amazon2023")
