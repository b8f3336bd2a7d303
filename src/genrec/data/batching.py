"""Turning CSR slices of item indices into padded arrays (shared by models and the evaluator)."""

from __future__ import annotations

import numpy as np


def flatten_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenation of arange(start, end) for every pair, vectorised."""
    lengths = np.maximum(ends - starts, 0)
    total = int(lengths.sum())
    within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + within


def pad_left(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, max_len: int,
             width: int | None = None) -> np.ndarray:
    """Rows = the last `max_len` items of items[start:end], right-aligned, zero-padded on the left.

    Width is the longest row (capped at max_len) unless given, so short batches stay short.
    """
    starts = np.maximum(starts, ends - max_len)
    lengths = ends - starts
    width = int(lengths.max(initial=0)) if width is None else width
    out = np.zeros((len(starts), max(width, 1)), dtype=np.int64)
    source = flatten_ranges(starts, ends)
    rows = np.repeat(np.arange(len(starts)), lengths)
    # Column of each item: right-aligned, so the row's last item lands in the last column.
    cols = out.shape[1] - np.repeat(ends, lengths) + source
    out[rows, cols] = items[source]
    return out


def length_bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                            pool_batches: int = 50) -> list[np.ndarray]:
    """Shuffled batches of row indices where rows of similar length share a batch.

    Rows are shuffled, cut into pools of `pool_batches` batches, sorted by length inside
    a pool, batched, and the batches shuffled: little padding, still random order.
    """
    order = rng.permutation(len(lengths))
    pool = batch_size * pool_batches
    batches = []
    for begin in range(0, len(order), pool):
        chunk = order[begin:begin + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]
