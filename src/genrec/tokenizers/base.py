"""The item tokenizer interface: embeddings in, unique integer codes (semantic IDs) out.

Every tokenizer turns an (n_items x dim) float32 matrix into *semantic codes*
(n_items x L_sem integers, level l in [0, level_sizes[l])). Items whose semantic
codes are identical are then told apart by one extra *disambiguation* level
(TIGER): the k-th item of a colliding group gets digit k. The result, the final
codes (n_items x L), is what a generative model is trained on; row r belongs to
item r (for a genrec SequenceDataset: item index r + 1, index 0 being padding).

Token layout: level l's codes are shifted by `layout.offsets[l]` to give one flat
token vocabulary (`layout.to_tokens`). Levels may carry a pad code (hierarchical
k-means pads short paths) that is part of the level's range.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..config import ConfigError, from_dict, merge_into, to_dict
from ..registry import Registry

log = logging.getLogger(__name__)

TOKENIZERS: Registry[type["Tokenizer"]] = Registry("tokenizer")

FORMAT_VERSION = 1
DEDUP_MODES = ("auto", "always", "never")


# --------------------------------------------------------------------------- layout


@dataclass
class VocabLayout:
    """Sizes of each code level and where each level starts in a flat token vocabulary."""

    level_sizes: list[int]
    # How many leading levels are semantic; the rest (0 or 1) is the disambiguation level.
    n_semantic_levels: int
    # Per level, the code that means "no code here" (hierarchical k-means padding), or None.
    pad_codes: list[int | None] = field(default_factory=list)

    def __post_init__(self):
        if not self.pad_codes:
            self.pad_codes = [None] * len(self.level_sizes)
        if len(self.pad_codes) != len(self.level_sizes):
            raise ValueError("pad_codes must have one entry per level")

    @property
    def num_levels(self) -> int:
        return len(self.level_sizes)

    @property
    def has_dedup_level(self) -> bool:
        return self.num_levels > self.n_semantic_levels

    @property
    def offsets(self) -> list[int]:
        out, total = [], 0
        for size in self.level_sizes:
            out.append(total)
            total += size
        return out

    @property
    def vocab_size(self) -> int:
        return int(sum(self.level_sizes))

    def to_tokens(self, codes: np.ndarray) -> np.ndarray:
        """Per-level codes -> flat token ids (code + level offset)."""
        codes = np.asarray(codes)
        return codes + np.asarray(self.offsets, dtype=codes.dtype)[: codes.shape[-1]]

    def from_tokens(self, tokens: np.ndarray) -> np.ndarray:
        tokens = np.asarray(tokens)
        return tokens - np.asarray(self.offsets, dtype=tokens.dtype)[: tokens.shape[-1]]

    def to_dict(self) -> dict:
        return {"level_sizes": list(map(int, self.level_sizes)), "n_semantic_levels": int(self.n_semantic_levels),
                "pad_codes": [None if p is None else int(p) for p in self.pad_codes],
                "offsets": self.offsets, "vocab_size": self.vocab_size}

    @classmethod
    def from_dict(cls, data: dict) -> "VocabLayout":
        return cls(list(data["level_sizes"]), int(data["n_semantic_levels"]), list(data.get("pad_codes") or []))


# --------------------------------------------------------------------------- collisions


@dataclass
class CollisionStats:
    """How many items shared their semantic codes before the disambiguation digit."""

    n_items: int
    n_unique_semantic_ids: int
    n_colliding_items: int  # items in a group of size > 1
    n_collision_groups: int
    largest_group: int
    collision_rate: float  # n_colliding_items / n_items

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def group_rows(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Groups identical rows: (inverse: group id per row, counts per group, rank of each row in its group).

    Ranks follow row order, so the first item of a group gets 0.
    """
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    if codes.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(inverse), dtype=np.int64)
    rank[order] = np.arange(len(inverse)) - np.repeat(starts, counts)
    return inverse, counts, rank


def collision_stats(codes: np.ndarray) -> CollisionStats:
    inverse, counts, _ = group_rows(codes)
    n = int(codes.shape[0])
    colliding = int(counts[counts > 1].sum()) if n else 0
    return CollisionStats(
        n_items=n,
        n_unique_semantic_ids=int(len(counts)),
        n_colliding_items=colliding,
        n_collision_groups=int((counts > 1).sum()),
        largest_group=int(counts.max()) if n else 0,
        collision_rate=colliding / n if n else 0.0,
    )


def disambiguate(semantic_codes: np.ndarray, mode: str = "auto") -> tuple[np.ndarray, CollisionStats, int]:
    """Appends TIGER's disambiguation digit; returns (final codes, stats, size of the extra level or 0).

    mode: "auto" appends the level only when some items collide, "always" always appends it,
    "never" never does (IDs may then not be unique; the stats say so).
    """
    if mode not in DEDUP_MODES:
        raise ValueError(f"dedup must be one of {DEDUP_MODES}, got {mode!r}")
    semantic_codes = np.asarray(semantic_codes, dtype=np.int64)
    stats = collision_stats(semantic_codes)
    if mode == "never" or (mode == "auto" and stats.largest_group <= 1):
        return semantic_codes.copy(), stats, 0
    _, _, rank = group_rows(semantic_codes)
    final = np.concatenate([semantic_codes, rank[:, None]], axis=1)
    return final, stats, max(1, stats.largest_group)


# --------------------------------------------------------------------------- index


class CodeIndex:
    """Final code tuple -> row (item) lookup, single or vectorised."""

    def __init__(self, codes: np.ndarray):
        self._map: dict[tuple, int] = {}
        for row, code in enumerate(np.asarray(codes, dtype=np.int64).tolist()):
            self._map.setdefault(tuple(code), row)

    def __len__(self) -> int:
        return len(self._map)

    def __contains__(self, code) -> bool:
        return tuple(int(c) for c in code) in self._map

    def get(self, code, default: int = -1) -> int:
        return self._map.get(tuple(int(c) for c in code), default)

    def add(self, code, row: int) -> None:
        self._map[tuple(int(c) for c in code)] = int(row)

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        """Rows for each code in an (m x L) array; -1 where no item has that code."""
        codes = np.asarray(codes, dtype=np.int64)
        return np.array([self._map.get(tuple(c), -1) for c in codes.tolist()], dtype=np.int64)


# --------------------------------------------------------------------------- base class


@dataclass
class TokenizerConfig:
    """Options shared by every tokenizer."""

    seed: int = 0
    # Disambiguation digit: auto (only if some items collide) | always (TIGER) | never.
    dedup: str = "auto"


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to unit L2 norm (all-zero rows stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def check_embeddings(embeddings: Any, dim: int | None = None) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-d (n_items x dim) array, got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("no embeddings given")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"embeddings have dimension {x.shape[1]}, the tokenizer was fitted on {dim}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or infinite values")
    return np.ascontiguousarray(x)


class Tokenizer(ABC):
    """Base class: subclasses implement `_fit`, `_encode`, `semantic_level_sizes` and state I/O."""

    name: ClassVar[str] = ""
    Config: ClassVar[type] = TokenizerConfig

    def __init__(self, config: Any = None):
        if config is None:
            config = self.Config()
        elif isinstance(config, dict):
            config = from_dict(self.Config, config)
        elif not isinstance(config, self.Config):
            raise TypeError(f"{type(self).__name__} needs a {self.Config.__name__}, got {type(config).__name__}")
        if config.dedup not in DEDUP_MODES:
            raise ConfigError(f"dedup must be one of {DEDUP_MODES}, got {config.dedup!r}")
        self.config = config
        self.dim: int | None = None
        self.codes: np.ndarray | None = None  # final codes of the fitted (and added) items
        self.semantic_codes: np.ndarray | None = None
        self.layout: VocabLayout | None = None
        self.collisions: CollisionStats | None = None
        self.index: CodeIndex | None = None
        self.fit_seconds: float | None = None
        self.fit_info: dict = {}

    # ---- to implement
    @abstractmethod
    def _fit(self, x: np.ndarray) -> np.ndarray:
        """Learns the quantiser on x and returns x's semantic codes (n x L_sem)."""

    @abstractmethod
    def _encode(self, x: np.ndarray) -> np.ndarray:
        """Semantic codes of x under the fitted quantiser (deterministic)."""

    @abstractmethod
    def semantic_level_sizes(self) -> tuple[list[int], list[int | None]]:
        """(size of each semantic level, pad code of each level or None)."""

    def _state(self) -> dict[str, np.ndarray]:
        """Arrays that define the fitted quantiser (saved to state.npz)."""
        return {}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        pass

    def _save_extra(self, directory: Path) -> None:
        """For state that is not a set of arrays (e.g. a torch module)."""

    def _load_extra(self, directory: Path) -> None:
        pass

    def reconstruct(self, x: np.ndarray) -> np.ndarray | None:
        """x as the tokenizer reconstructs it from its codes (for quantisation error); None if meaningless."""
        return None

    # ---- public API
    @property
    def is_fitted(self) -> bool:
        return self.codes is not None

    def fit(self, embeddings: Any) -> np.ndarray:
        """Fits on item embeddings (row r = item r) and returns their unique final codes (n x L)."""
        x = check_embeddings(embeddings)
        self.dim = int(x.shape[1])
        self.fit_info = {}
        start = time.perf_counter()
        semantic = np.asarray(self._fit(x), dtype=np.int64)
        if semantic.shape[0] != x.shape[0]:
            raise RuntimeError(f"{self.name}: _fit returned {semantic.shape[0]} rows for {x.shape[0]} items")
        final, stats, dedup_size = disambiguate(semantic, self.config.dedup)
        self.fit_seconds = time.perf_counter() - start
        sizes, pads = self.semantic_level_sizes()
        if dedup_size:
            sizes, pads = list(sizes) + [dedup_size], list(pads) + [None]
        self.layout = VocabLayout(list(map(int, sizes)), semantic.shape[1], list(pads))
        self.semantic_codes, self.codes, self.collisions = semantic, final, stats
        self.index = CodeIndex(final)
        log.info("%s: %d items, %d levels %s, collision rate %.4f (largest group %d), %.1fs",
                 self.name, x.shape[0], self.layout.num_levels, self.layout.level_sizes,
                 stats.collision_rate, stats.largest_group, self.fit_seconds)
        return final

    def encode(self, embeddings: Any) -> np.ndarray:
        """Semantic codes (n x n_semantic_levels) of any embeddings, e.g. items added after fitting.

        For the fitted items this reproduces `fit`'s codes without the disambiguation digit.
        Use `add_items` to give new items a full unique ID.
        """
        self._require_fitted()
        return np.asarray(self._encode(check_embeddings(embeddings, self.dim)), dtype=np.int64)

    def add_items(self, embeddings: Any) -> np.ndarray:
        """Cold start: final unique codes for new items, which are appended to `codes` and the index.

        A new item whose semantic codes collide with an existing item gets the next free
        disambiguation digit; if that digit exceeds the level's size, the layout grows (a model
        trained on the old layout then needs its embedding table resized).
        """
        semantic = self.encode(embeddings)
        layout = self.layout
        if not layout.has_dedup_level:
            out = semantic
            clashes = [i for i, c in enumerate(out.tolist()) if tuple(c) in self.index]
            if clashes or collision_stats(out).largest_group > 1:
                raise ValueError(
                    f"{len(clashes)} new item(s) collide with existing IDs and this tokenizer has no "
                    "disambiguation level; refit with dedup=always to reserve one")
        else:
            used: dict[tuple, int] = {}
            for code in self.codes.tolist():
                key = tuple(code[:-1])
                used[key] = max(used.get(key, -1), code[-1])
            suffix = np.empty(len(semantic), dtype=np.int64)
            for i, code in enumerate(semantic.tolist()):
                key = tuple(code)
                used[key] = used.get(key, -1) + 1
                suffix[i] = used[key]
            out = np.concatenate([semantic, suffix[:, None]], axis=1)
            if suffix.size and suffix.max() >= layout.level_sizes[-1]:
                log.warning("disambiguation level grows from %d to %d codes",
                            layout.level_sizes[-1], int(suffix.max()) + 1)
                layout.level_sizes[-1] = int(suffix.max()) + 1
        start = len(self.codes)
        for i, code in enumerate(out):
            self.index.add(code, start + i)
        self.codes = np.concatenate([self.codes, out])
        self.semantic_codes = np.concatenate([self.semantic_codes, semantic])
        return out

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        """Final codes -> item rows (-1 for codes that name no item)."""
        self._require_fitted()
        return self.index.lookup(codes)

    @property
    def unique_ids(self) -> bool:
        return self.is_fitted and len(self.index) == len(self.codes)

    # ---- persistence
    def save(self, directory: str | Path) -> Path:
        """Writes the fitted state; tokenizer.json, which load_tokenizer and the caches look for,
        is removed first and written last (temp file + rename), so a folder that has one is complete
        even if a save over an older one was cut off."""
        self._require_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        marker = directory / "tokenizer.json"
        marker.unlink(missing_ok=True)
        meta = {
            "format_version": FORMAT_VERSION,
            "tokenizer": self.name,
            "config": to_dict(self.config),
            "dim": self.dim,
            "n_items": int(len(self.codes)),
            "layout": self.layout.to_dict(),
            "collisions": self.collisions.to_dict(),
            "fit_seconds": self.fit_seconds,
            "fit_info": self.fit_info,
        }
        np.save(directory / "codes.npy", self.codes)
        np.save(directory / "semantic_codes.npy", self.semantic_codes)
        np.savez(directory / "state.npz", **self._state())
        self._save_extra(directory)
        partial = marker.with_name(marker.name + ".partial")
        partial.write_text(json.dumps(meta, indent=2, default=_json_default))
        os.replace(partial, marker)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "Tokenizer":
        return load_tokenizer(directory)

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(f"tokenizer '{self.name}' is not fitted")

    def __repr__(self) -> str:
        state = f"{len(self.codes)} items, layout {self.layout.level_sizes}" if self.is_fitted else "not fitted"
        return f"{type(self).__name__}({state})"


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Restores a tokenizer written by `Tokenizer.save`."""
    directory = Path(directory)
    meta_path = directory / "tokenizer.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"no fitted tokenizer in {directory} (missing tokenizer.json)")
    meta = json.loads(meta_path.read_text())
    cls = TOKENIZERS.get(meta["tokenizer"])
    tok = cls(from_dict(cls.Config, meta["config"]))
    tok.dim = meta["dim"]
    tok.layout = VocabLayout.from_dict(meta["layout"])
    tok.collisions = CollisionStats(**meta["collisions"])
    tok.fit_seconds = meta.get("fit_seconds")
    tok.fit_info = meta.get("fit_info") or {}
    tok.codes = np.load(directory / "codes.npy")
    tok.semantic_codes = np.load(directory / "semantic_codes.npy")
    with np.load(directory / "state.npz", allow_pickle=False) as state:
        tok._set_state({k: state[k] for k in state.files})
    tok._load_extra(directory)
    tok.index = CodeIndex(tok.codes)
    return tok


def build_tokenizer(name: str, config: Any = None, overrides: dict | None = None) -> Tokenizer:
    """A tokenizer by registry name, its config from a dataclass or mapping plus nested overrides."""
    cls = TOKENIZERS.get(name)
    if config is None:
        cfg = cls.Config()
    elif isinstance(config, dict):
        cfg = from_dict(cls.Config, config)
    else:
        cfg = config
    if overrides:
        cfg = merge_into(cfg, overrides)
    return cls(cfg)
