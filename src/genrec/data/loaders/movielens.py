"""MovieLens 100K (`u.data`, `u.item`) and 1M (`ratings.dat`, `movies.dat`) as GroupLens ships them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..config import DataConfig
from ..errors import DataError
from ..raw import RawData
from . import FORMATS, reads_options
from .tables import iter_delimited, require_file

# u.item's 19 genre flags, in column order, for copies that lack u.genre.
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western")
_RATING_FIELDS = ("user_id", "item_id", "rating", "timestamp")


def _find_release(root: Path) -> tuple[str, Path]:
    """('100k' | '1m', folder): `root` itself or its one subfolder (the zips unpack into ml-*/)."""
    if not root.is_dir():
        raise DataError("dataset folder not found (set data.path, or download it with "
                        "`genrec download ml-1m`)", path=root)

    def release(folder: Path) -> str | None:
        if (folder / "u.data").is_file():
            return "100k"
        if (folder / "ratings.dat").is_file():
            return "1m"
        return None

    if (found := release(root)) is not None:
        return found, root
    candidates = [(r, d) for d in sorted(root.iterdir()) if d.is_dir() and (r := release(d)) is not None]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise DataError("no MovieLens files: expected u.data + u.item (100K) or ratings.dat + "
                        "movies.dat (1M) in this folder or one subfolder", path=root)
    raise DataError(f"several MovieLens copies ({', '.join(str(d) for _, d in candidates)}); "
                    f"point data.path at one", path=root)


def _number(value: str, path: Path, line: int, field: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise DataError(f"not a number: {value!r}", path=path, line=line, field=field) from None


def _read_ratings(path: Path, sep: str, min_rating: float | None, notes: list[str]) -> pd.DataFrame:
    rows = []
    dropped = 0
    for number, (user, item, rating, timestamp) in iter_delimited(path, sep, _RATING_FIELDS, "latin-1"):
        stars = _number(rating, path, number, "rating")
        seconds = _number(timestamp, path, number, "timestamp")
        if min_rating is not None and stars < min_rating:
            dropped += 1
            continue
        rows.append((user, item, seconds))
    if min_rating is not None:
        notes.append(f"dropped {dropped} ratings below min_rating={min_rating:g}")
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def _ml100k_genres(folder: Path) -> tuple[str, ...]:
    """Genre names in flag order, from u.genre (`name|index` lines) when present."""
    path = folder / "u.genre"
    if not path.is_file():
        return ML100K_GENRES
    indexed = {}
    for number, (name, index) in iter_delimited(path, "|", ("genre", "index"), "latin-1"):
        indexed[int(_number(index, path, number, "index"))] = name
    if sorted(indexed) != list(range(len(indexed))):
        raise DataError(f"genre indices must be 0..{len(indexed) - 1}", path=path, field="index")
    return tuple(indexed[i] for i in range(len(indexed)))


def _read_ml100k_items(folder: Path) -> pd.DataFrame:
    path = require_file(folder / "u.item")
    genres = _ml100k_genres(folder)
    fields = ("movie_id", "title", "release_date", "video_release_date", "url") + genres
    rows = []
    for number, values in iter_delimited(path, "|", fields, "latin-1"):
        flags = values[5:]
        for genre, flag in zip(genres, flags):
            if flag not in ("0", "1"):
                raise DataError(f"genre flag must be 0 or 1, got {flag!r}", path=path, line=number,
                                field=genre)
        rows.append((values[0], values[1].strip() or None,
                     [g for g, flag in zip(genres, flags) if flag == "1"] or None))
    return pd.DataFrame(rows, columns=["item_id", "title", "genres"])


def _read_ml1m_items(folder: Path) -> pd.DataFrame:
    path = require_file(folder / "movies.dat")
    rows = [(movie, title.strip() or None, [g for g in genres.split("|") if g] or None)
            for _, (movie, title, genres) in iter_delimited(path, "::", ("movie_id", "title", "genres"),
                                                            "latin-1")]
    return pd.DataFrame(rows, columns=["item_id", "title", "genres"])


@FORMATS.register("movielens")
@reads_options("min_rating")
def load_movielens(cfg: DataConfig) -> RawData:
    """ML-100K or ML-1M, detected from the files present; option min_rating drops low ratings.

    Items are the full movie list (title, genres), including movies nobody rated.
    """
    release, folder = _find_release(cfg.resolved_path())
    min_rating = cfg.number_option("min_rating")
    notes: list[str] = []
    if release == "100k":
        interactions = _read_ratings(folder / "u.data", "\t", min_rating, notes)
        items = _read_ml100k_items(folder)
    else:
        interactions = _read_ratings(folder / "ratings.dat", "::", min_rating, notes)
        items = _read_ml1m_items(folder)
    return RawData(interactions=interactions, items=items, source=str(folder), notes=notes)
