"""A prefix trie of every valid item code, held as dense tensors for batched constrained decoding.

The distinct prefixes of each depth are numbered (depth 0 has one prefix, the empty one, id 0).
For level l, `allowed[l]` is a (num prefixes of depth l x level size l) bool tensor that marks
the codes that extend a prefix towards some item, and `child[l]` (same shape, -1 where absent)
gives the id of the extended prefix at depth l + 1, or, at the last level, the item index.
A beam search then gathers rows by prefix id: no Python per beam.

Sizes: depth-l prefixes number at most min(prod(level sizes < l), items), so each table is
at most items x level size.
"""

from __future__ import annotations

import numpy as np
import torch


class CodeTrie:
    """Valid-code trie: `allowed[l]`, `child[l]` per level; rebuilt in one vectorised pass."""

    def __init__(self, codes: np.ndarray, items: np.ndarray | None = None,
                 level_sizes: list[int] | None = None):
        """codes: (n x L) per-level codes; items: the item index of each row (default row + 1)."""
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or codes.shape[0] == 0:
            raise ValueError(f"codes must be a non-empty (n x L) array, got shape {codes.shape}")
        items = np.arange(1, len(codes) + 1, dtype=np.int64) if items is None else np.asarray(items, np.int64)
        if len(items) != len(codes):
            raise ValueError(f"{len(items)} item indices for {len(codes)} code rows")
        self.codes = codes
        self.items = items
        self._given_sizes = list(level_sizes) if level_sizes is not None else None
        self.device = torch.device("cpu")
        self._build()

    @property
    def num_levels(self) -> int:
        return self.codes.shape[1]

    def _build(self) -> None:
        codes, n_levels = self.codes, self.codes.shape[1]
        if (codes < 0).any():
            raise ValueError("codes must be non-negative")
        sizes = [int(codes[:, l].max()) + 1 for l in range(n_levels)]
        if self._given_sizes is not None:
            if len(self._given_sizes) != n_levels:
                raise ValueError(f"{len(self._given_sizes)} level sizes for {n_levels} levels")
            sizes = [max(int(a), b) for a, b in zip(self._given_sizes, sizes)]
        self.level_sizes = sizes
        self.allowed: list[torch.Tensor] = []
        self.child: list[torch.Tensor] = []
        prefix = np.zeros(len(codes), dtype=np.int64)  # prefix id of each row at the current depth
        n_prefixes = 1
        for level, size in enumerate(sizes):
            key = prefix * size + codes[:, level]
            allowed = np.zeros(n_prefixes * size, dtype=bool)
            allowed[key] = True
            child = np.full(n_prefixes * size, -1, dtype=np.int64)
            if level == n_levels - 1:
                # A duplicated full code keeps its first row's item (reversed assignment: first wins).
                child[key[::-1]] = self.items[::-1]
            else:
                unique, inverse = np.unique(key, return_inverse=True)
                child[unique] = np.arange(len(unique))
                prefix, n_prefixes = inverse.reshape(-1), len(unique)
            self.allowed.append(torch.from_numpy(allowed.reshape(-1, size)).to(self.device))
            self.child.append(torch.from_numpy(child.reshape(-1, size)).to(self.device))

    def add(self, codes: np.ndarray, items: np.ndarray, level_sizes: list[int] | None = None) -> None:
        """Adds code rows (e.g. cold-start items) and rebuilds the tables on the same device."""
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, self.num_levels)
        self.codes = np.concatenate([self.codes, codes])
        self.items = np.concatenate([self.items, np.asarray(items, dtype=np.int64).reshape(-1)])
        if level_sizes is not None:
            self._given_sizes = list(level_sizes)
        self._build()

    def to(self, device: torch.device | str) -> "CodeTrie":
        device = torch.device(device)
        if device != self.device:
            self.allowed = [a.to(device) for a in self.allowed]
            self.child = [c.to(device) for c in self.child]
            self.device = device
        return self

    def step(self, level: int, prefix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For prefix ids (any shape) at depth `level`: (allowed mask, child ids), each (..., size)."""
        return self.allowed[level][prefix], self.child[level][prefix]

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """(..., L) code rows -> item index, -1 where the code names no item."""
        prefix = torch.zeros(codes.shape[:-1], dtype=torch.long, device=codes.device)
        for level in range(self.num_levels):
            code = codes[..., level]
            inside = (code >= 0) & (code < self.level_sizes[level]) & (prefix >= 0)
            nxt = self.child[level][prefix.clamp(min=0), code.clamp(0, self.level_sizes[level] - 1)]
            prefix = torch.where(inside, nxt, torch.full_like(nxt, -1))
        return prefix

    def valid_prefixes(self, level: int) -> set[tuple[int, ...]]:
        """The set of valid prefixes of length `level` (for tests and debugging)."""
        return {tuple(row) for row in self.codes[:, :level].tolist()}

    def allowed_tokens(self, level_offsets: list[int]) -> dict[tuple[int, ...], list[int]]:
        """Token prefix -> allowed next tokens, with level l's code c as token level_offsets[l] + c:
        the table a callback-based decoder needs (e.g. transformers' `prefix_allowed_tokens_fn`)."""
        tokens = self.codes + np.asarray(level_offsets[: self.num_levels], dtype=np.int64)
        table: dict[tuple[int, ...], set[int]] = {}
        for row in tokens.tolist():
            for level in range(self.num_levels):
                table.setdefault(tuple(row[:level]), set()).add(row[level])
        return {prefix: sorted(nxt) for prefix, nxt in table.items()}

