"""The processed dataset every model reads: user sequences (CSR) + an item table with text.

Items are indexed 1..num_items; index 0 is padding. Leave-one-out split (TIGER, EAGER,
VQ-Rec, S3-Rec): for each user the last item is the test target, the second-to-last the
validation target, and everything before is training data.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .batching import flatten_ranges

SPLITS = ("train", "valid", "test")


@dataclass
class EvalSplit:
    """Per-user history (CSR slices into the dataset's item array) and the held-out target."""

    users: np.ndarray  # (U,) user index
    starts: np.ndarray  # (U,) start offset of the history in `items`
    ends: np.ndarray  # (U,) end offset (exclusive)
    targets: np.ndarray  # (U,) item index to predict


@dataclass
class SequenceDataset:
    name: str
    item_ids: list[str]  # index 0 is the padding item ""
    item_text: list[str]  # text rendered from the configured fields, index 0 = ""
    item_titles: list[str]  # short label for display (title if any, else the text)
    user_ids: list[str]
    offsets: np.ndarray  # (num_users + 1,) int64
    items: np.ndarray  # (num_interactions,) int64 item indices, user by user, in time order
    fingerprint: str = ""
    log: list[str] = field(default_factory=list)

    @property
    def num_items(self) -> int:
        return len(self.item_ids) - 1

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sequence(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user]:self.offsets[user + 1]]

    def train_ranges(self) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) of each user's training part: all but the last two items."""
        return self.offsets[:-1].copy(), self.offsets[1:] - 2

    def train_item_counts(self) -> np.ndarray:
        """Occurrences of each item (index 0 = padding) in the training part of all sequences."""
        return np.bincount(self.items[flatten_ranges(*self.train_ranges())], minlength=self.num_items + 1)

    def eval_split(self, split: str) -> EvalSplit:
        """Histories and targets for 'valid' (predict the second-to-last) or 'test' (the last)."""
        if split not in ("valid", "test"):
            raise ValueError(f"eval split must be 'valid' or 'test', not {split!r}")
        held_out = 2 if split == "valid" else 1
        ends = self.offsets[1:] - held_out
        return EvalSplit(users=np.arange(self.num_users), starts=self.offsets[:-1].copy(),
                         ends=ends, targets=self.items[ends])

    def item_index(self) -> dict[str, int]:
        return {item_id: i for i, item_id in enumerate(self.item_ids) if i > 0}

    def stats(self) -> dict:
        lengths = self.lengths
        return {"users": self.num_users, "items": self.num_items, "interactions": int(len(self.items)),
                "mean_length": round(float(lengths.mean()), 2) if len(lengths) else 0.0,
                "density": round(len(self.items) / max(1, self.num_users * self.num_items), 6)}

    # -- persistence -------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Writes the dataset atomically: a temp folder renamed into place. A folder already
        there is renamed aside first and deleted after (a reader never sees it half deleted);
        if another process's save lands between the two renames, that one stays, and if the
        rename fails otherwise, the old folder is put back."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
        old = tmp.with_name(tmp.name + ".old")
        try:
            np.savez(tmp / "sequences.npz", offsets=self.offsets, items=self.items)
            pd.DataFrame({"item_id": self.item_ids, "text": self.item_text, "title": self.item_titles}
                         ).to_parquet(tmp / "items.parquet", index=False)
            pd.DataFrame({"user_id": self.user_ids}).to_parquet(tmp / "users.parquet", index=False)
            meta = {"name": self.name, "fingerprint": self.fingerprint, "stats": self.stats(), "log": self.log}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
            try:
                os.replace(directory, old)
            except FileNotFoundError:
                pass
            try:
                os.replace(tmp, directory)
            except OSError:
                if (directory / "meta.json").is_file():
                    return  # another save landed between the two renames
                if old.exists() and not directory.exists():
                    os.replace(old, directory)
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, directory: str | Path) -> "SequenceDataset":
        directory = Path(directory)
        meta = json.loads((directory / "meta.json").read_text())
        arrays = np.load(directory / "sequences.npz")
        items = pd.read_parquet(directory / "items.parquet")
        users = pd.read_parquet(directory / "users.parquet")
        return cls(name=meta["name"], item_ids=items.item_id.tolist(), item_text=items.text.tolist(),
                   item_titles=items.title.tolist(), user_ids=users.user_id.tolist(),
                   offsets=arrays["offsets"], items=arrays["items"], fingerprint=meta["fingerprint"],
                   log=meta["log"])
