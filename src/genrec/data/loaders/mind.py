"""MIND news recommendation data (Microsoft News): behaviors.tsv + news.tsv of one split.

MIND logs impressions, not sequences. A user's sequence is rebuilt as their click history
(identical in each of their impressions within a split, so taken once, from the earliest)
followed by the news they clicked in each impression, in time order.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ..config import DataConfig
from ..errors import DataError
from ..raw import RawData
from . import FORMATS, reads_options
from .tables import iter_delimited
from .tables import require_file

_BEHAVIOR_FIELDS = ("impression_id", "user_id", "time", "history", "impressions")
_NEWS_FIELDS = ("news_id", "category", "subcategory", "title", "abstract", "url",
                "title_entities", "abstract_entities")
_TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"  # 11/15/2019 8:55:38 AM


def _split_folder(root: Path, split: str) -> Path:
    """`root` if it holds behaviors.tsv, else the one folder (up to two levels down) whose
    path mentions `split`: MINDsmall_train/, train/, or MINDsmall_train/MINDsmall_train/."""
    if not root.is_dir():
        raise DataError("dataset folder not found (set data.path, or download it with "
                        "`genrec download mind-small`)", path=root)
    if (root / "behaviors.tsv").is_file():
        return root
    children = [d for d in sorted(root.iterdir()) if d.is_dir()]
    grandchildren = [g for d in children for g in sorted(d.iterdir()) if g.is_dir()]
    candidates = [d for d in children + grandchildren
                  if (d / "behaviors.tsv").is_file() and split.lower() in str(d.relative_to(root)).lower()]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise DataError(f"no behaviors.tsv here or in a subfolder named like *{split}* "
                        f"(data.options.split = '{split}')", path=root)
    raise DataError(f"several '{split}' folders hold behaviors.tsv "
                    f"({', '.join(str(d) for d in candidates)}); point data.path at one", path=root)


def _read_behaviors(path: Path, notes: list[str]) -> pd.DataFrame:
    history: dict[str, tuple[float, str]] = {}  # user -> (time, history) of the earliest impression
    clicks: dict[str, list[tuple[float, list[str]]]] = {}  # user -> [(time, clicked ids)] in file order
    inconsistent: set[str] = set()
    unlabeled = 0
    for number, (_, user, time, past, shown) in iter_delimited(path, "\t", _BEHAVIOR_FIELDS):
        if not user:
            raise DataError("missing", path=path, line=number, field="user_id")
        try:
            seconds = datetime.strptime(time.strip(), _TIME_FORMAT).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            raise DataError(f"expected a time like '11/15/2019 8:55:38 AM', got {time!r}", path=path,
                            line=number, field="time") from None
        clicked = []
        for token in shown.split():
            news, dash, label = token.rpartition("-")
            if not dash:  # the test split does not reveal clicks
                unlabeled += 1
            elif label == "1":
                clicked.append(news)
            elif label != "0":
                raise DataError(f"impression {token!r}: label must be 0 or 1", path=path, line=number,
                                field="impressions")
        if user in history:
            if history[user][1] != past:
                inconsistent.add(user)
            if seconds < history[user][0]:
                history[user] = (seconds, past)
        else:
            history[user] = (seconds, past)
        clicks.setdefault(user, []).append((seconds, clicked))

    rows = []
    for user, (first, past) in history.items():
        ids = past.split()
        # History clicks happened before the first impression; one second apart keeps their order.
        rows += [(user, news, first - (len(ids) - i)) for i, news in enumerate(ids)]
        for seconds, clicked in sorted(clicks[user], key=lambda entry: entry[0]):  # stable: file order on ties
            rows += [(user, news, seconds) for news in clicked]
    if unlabeled:
        notes.append(f"skipped {unlabeled} impressions without a click label (test split)")
    if inconsistent:
        notes.append(f"{len(inconsistent)} users have differing histories across impressions; "
                     f"used the history of each one's earliest impression")
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def _read_news(path: Path) -> pd.DataFrame:
    rows = []
    for number, values in iter_delimited(path, "\t", _NEWS_FIELDS):
        record = dict(zip(_NEWS_FIELDS, (v.strip() or None for v in values)))
        if record["news_id"] is None:
            raise DataError("missing", path=path, line=number, field="news_id")
        rows.append(record)
    columns = ["news_id", "title", "category", "subcategory", "abstract"]
    return pd.DataFrame(rows, columns=list(_NEWS_FIELDS))[columns].rename(columns={"news_id": "item_id"})


@FORMATS.register("mind")
@reads_options("split")
def load_mind(cfg: DataConfig) -> RawData:
    """One split (option `split`, default "train") of MIND small or large.

    Items are every news article of news.tsv (title, category, subcategory, abstract),
    clicked or not. Times are read as UTC.
    """
    folder = _split_folder(cfg.resolved_path(), str(cfg.options.get("split", "train")))
    notes: list[str] = []
    interactions = _read_behaviors(folder / "behaviors.tsv", notes)
    items = _read_news(require_file(folder / "news.tsv"))
    return RawData(interactions=interactions, items=items, source=str(folder), notes=notes)
