"""Diagnostics of a fitted tokenizer: the numbers to look at when codebooks collapse.

- collision rate before disambiguation, largest collision group
- per-level utilisation (share of a level's codes used; pad codes excluded) and perplexity
  (exp of the entropy of the level's code distribution; = level size when perfectly uniform)
- quantisation / reconstruction error (mean squared error per dimension, and relative to the
  embeddings' squared norm) where the tokenizer can reconstruct
- neighbourhood preservation: for each item, the share of its 10 nearest neighbours in
  embedding space (faiss, exact L2) that share its first code (and, per depth, its first l
  codes), next to the share expected by chance from the code frequencies.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from .base import Tokenizer, VocabLayout
from .kmeans import _faiss

log = logging.getLogger(__name__)


def level_usage(codes: np.ndarray, layout: VocabLayout, levels: int | None = None) -> list[np.ndarray]:
    """Per level, how many items carry each code (length = level size)."""
    levels = layout.num_levels if levels is None else levels
    return [np.bincount(codes[:, l], minlength=layout.level_sizes[l]) for l in range(levels)]


def utilization(codes: np.ndarray, layout: VocabLayout, levels: int | None = None) -> list[float]:
    """Per level, the share of its (non-pad) codes that at least one item uses."""
    out = []
    for l, counts in enumerate(level_usage(codes, layout, levels)):
        pad = layout.pad_codes[l]
        real = np.delete(counts, pad) if pad is not None and pad < len(counts) else counts
        out.append(float((real > 0).sum() / max(1, len(real))))
    return out


def perplexity(codes: np.ndarray, layout: VocabLayout, levels: int | None = None) -> list[float]:
    """Per level, exp(entropy) of the distribution of its non-pad codes."""
    out = []
    for l, counts in enumerate(level_usage(codes, layout, levels)):
        pad = layout.pad_codes[l]
        real = np.delete(counts, pad) if pad is not None and pad < len(counts) else counts
        total = real.sum()
        if total == 0:
            out.append(0.0)
            continue
        p = real[real > 0] / total
        out.append(float(np.exp(-(p * np.log(p)).sum())))
    return out


def nearest_neighbours(x: np.ndarray, k: int = 10) -> np.ndarray:
    """(n x k) indices of each row's k nearest other rows (exact L2, faiss)."""
    faiss = _faiss()
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros((n, 0), dtype=np.int64)
    _, idx = faiss.knn(x, x, k + 1)
    is_self = idx == np.arange(n)[:, None]
    no_self = ~is_self.any(axis=1)
    is_self[no_self, -1] = True  # self hidden among duplicates: drop the farthest instead
    return idx[~is_self].reshape(n, k).astype(np.int64)


def neighbourhood_preservation(codes: np.ndarray, neighbours: np.ndarray, depth: int = 1) -> float:
    """Mean over items of the share of their neighbours whose first `depth` codes equal theirs."""
    if neighbours.shape[1] == 0:
        return float("nan")
    same = np.ones(neighbours.shape, dtype=bool)
    for l in range(depth):
        same &= codes[neighbours, l] == codes[:, l][:, None]
    return float(same.mean())


def chance_preservation(codes: np.ndarray, depth: int = 1) -> float:
    """Share of neighbours sharing the first `depth` codes if neighbours were random items."""
    _, counts = np.unique(codes[:, :depth], axis=0, return_counts=True)
    n = counts.sum()
    return float(((counts * (counts - 1)).sum()) / max(1, n * (n - 1)))


def diagnose(tokenizer: Tokenizer, embeddings: np.ndarray, *, knn: int = 10) -> dict[str, Any]:
    """The diagnostics report of a tokenizer fitted on `embeddings` (same rows, same order)."""
    if not tokenizer.is_fitted:
        raise RuntimeError("diagnose needs a fitted tokenizer")
    x = np.asarray(embeddings, dtype=np.float32)
    n = len(x)
    if len(tokenizer.semantic_codes) < n:
        raise ValueError(f"tokenizer knows {len(tokenizer.semantic_codes)} items, got {n} embeddings")
    semantic = tokenizer.semantic_codes[:n]
    final = tokenizer.codes[:n]
    layout = tokenizer.layout
    n_sem = layout.n_semantic_levels
    stats = tokenizer.collisions
    report: dict[str, Any] = {
        "tokenizer": tokenizer.name,
        "n_items": int(n),
        "n_levels": int(layout.num_levels),
        "n_semantic_levels": int(n_sem),
        "level_sizes": list(map(int, layout.level_sizes)),
        "vocab_size": int(layout.vocab_size),
        "unique_ids": bool(len(np.unique(final, axis=0)) == n),
        "collision_rate": float(stats.collision_rate),
        "largest_collision_group": int(stats.largest_group),
        "n_collision_groups": int(stats.n_collision_groups),
        "n_colliding_items": int(stats.n_colliding_items),
        "utilization": utilization(semantic, layout, n_sem),
        "perplexity": perplexity(semantic, layout, n_sem),
        "fit_seconds": float(tokenizer.fit_seconds) if tokenizer.fit_seconds is not None else None,
    }
    recon = tokenizer.reconstruct(x)
    if recon is not None:
        err = ((x - recon) ** 2).sum(axis=1)
        report["quantization_mse"] = float(err.mean() / x.shape[1])
        report["relative_quantization_error"] = float(err.sum() / max(1e-12, (x.astype(np.float64) ** 2).sum()))
    else:
        report["quantization_mse"] = None
        report["relative_quantization_error"] = None
    if hasattr(tokenizer, "latent_quantization_error"):
        report["latent_quantization_mse"] = tokenizer.latent_quantization_error(x)
    neighbours = nearest_neighbours(x, knn)
    report["knn"] = int(neighbours.shape[1])
    report["neighbourhood_preservation"] = neighbourhood_preservation(semantic, neighbours, 1)
    report["neighbourhood_preservation_chance"] = chance_preservation(semantic, 1)
    report["neighbourhood_preservation_by_depth"] = [
        neighbourhood_preservation(semantic, neighbours, d) for d in range(1, n_sem + 1)]
    return report


# --------------------------------------------------------------------------- presentation

_COLUMNS = [
    ("tokenizer", "tokenizer", "{}"),
    ("items", "n_items", "{}"),
    ("levels", "level_sizes", None),
    ("coll.rate", "collision_rate", "{:.4f}"),
    ("max grp", "largest_collision_group", "{}"),
    ("unique", "unique_ids", "{}"),
    ("util L1", None, None),
    ("util mean", None, None),
    ("ppl L1", None, None),
    ("quant MSE", "quantization_mse", "{:.2e}"),
    ("rel.err", "relative_quantization_error", "{:.3f}"),
    ("NN@10 L1", "neighbourhood_preservation", "{:.3f}"),
    ("chance", "neighbourhood_preservation_chance", "{:.3f}"),
    ("fit s", "fit_seconds", "{:.1f}"),
]


def _cell(report: dict, header: str, key: str | None, fmt: str | None) -> str:
    if header == "levels":
        sizes = report.get("level_sizes", [])
        if len(sizes) > 5:  # e.g. PQ: "32x256+21" = 32 levels of 256 codes + a 21-code digit level
            n_sem = report.get("n_semantic_levels", len(sizes))
            return f"{n_sem}x{sizes[0]}" + (f"+{sizes[-1]}" if len(sizes) > n_sem else "")
        return "x".join(map(str, sizes))
    if header == "util L1":
        return f"{report['utilization'][0]:.3f}" if report.get("utilization") else "-"
    if header == "util mean":
        return f"{np.mean(report['utilization']):.3f}" if report.get("utilization") else "-"
    if header == "ppl L1":
        return f"{report['perplexity'][0]:.1f}" if report.get("perplexity") else "-"
    value = report.get(key)
    if value is None:
        return "-"
    return fmt.format(value) if fmt else str(value)


def format_table(reports: list[dict], markdown: bool = False) -> str:
    """Reports side by side: a fixed-width text table, or a Markdown table."""
    headers = [h for h, _, _ in _COLUMNS]
    rows = [[_cell(r, h, k, f) for h, k, f in _COLUMNS] for r in reports]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    fmt_row = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([fmt_row(headers), fmt_row(["-" * w for w in widths]), *map(fmt_row, rows)])


def plot_code_usage(tokenizer: Tokenizer, path: str | Path, title: str | None = None) -> Path:
    """PNG of how many items use each code, per semantic level (matplotlib, Agg backend)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    layout = tokenizer.layout
    n_sem = layout.n_semantic_levels
    usage = level_usage(tokenizer.semantic_codes, layout, n_sem)
    util = utilization(tokenizer.semantic_codes, layout, n_sem)
    title = title or f"{tokenizer.name}: code usage per level ({len(tokenizer.semantic_codes)} items)"
    path = Path(path)
    if n_sem <= 8:
        fig, axes = plt.subplots(n_sem, 1, figsize=(9, 1.9 * n_sem + 0.8), squeeze=False)
        for l, counts in enumerate(usage):
            ax = axes[l, 0]
            colors = ["#999999" if layout.pad_codes[l] == c else "#3b6ea5" for c in range(len(counts))]
            ax.bar(np.arange(len(counts)), counts, width=1.0, color=colors)
            ax.set_xlim(-0.5, len(counts) - 0.5)
            ax.set_ylabel("items")
            ax.set_title(f"level {l + 1}: {int((counts > 0).sum())}/{len(counts)} codes used "
                         f"(utilisation {util[l]:.1%})", fontsize=9)
        axes[-1, 0].set_xlabel("code")
    else:
        width = max(layout.level_sizes[:n_sem])
        grid = np.full((n_sem, width), np.nan)
        for l, counts in enumerate(usage):
            grid[l, : len(counts)] = counts
        fig, ax = plt.subplots(figsize=(10, 0.22 * n_sem + 1.5))
        image = ax.imshow(np.log1p(grid), aspect="auto", interpolation="nearest", cmap="viridis")
        ax.set_xlabel("code")
        ax.set_ylabel("level")
        ticks = list(range(0, n_sem, max(1, n_sem // 8)))
        ax.set_yticks(ticks, [str(t + 1) for t in ticks])
        fig.colorbar(image, ax=ax, label="log(1 + items)")
        ax.set_title(f"mean utilisation {np.mean(util):.1%}, min {np.min(util):.1%}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(report: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=float))
    return path
