"""Ranking metrics for one held-out item per user (leave-one-out).

With a single relevant item at 0-based rank r: Recall@K = [r < K] (= hit rate) and
NDCG@K = [r < K] / log2(r + 2), since the ideal DCG is 1.
"""

from __future__ import annotations

import math

import torch


def ranks_from_scores(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target among all items; ties count against the target.

    scores: (B, N) with -inf for items that must never be recommended; targets: (B,).
    A model that scores everything equally ranks the target last, not first.
    """
    target_scores = scores.gather(1, targets[:, None])
    ahead = (scores >= target_scores).sum(dim=1) - 1
    return ahead.to(torch.float64)


def ranks_from_lists(ranked: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based position of each target in its ranked list, +inf where it is absent."""
    hits = ranked == targets[:, None]
    positions = torch.arange(ranked.shape[1], device=ranked.device, dtype=torch.float64)
    found = torch.where(hits, positions, torch.full_like(positions, math.inf))
    return found.min(dim=1).values if ranked.shape[1] else torch.full_like(targets, math.inf, dtype=torch.float64)


def metrics_from_ranks(ranks: torch.Tensor, ks: tuple[int, ...]) -> dict[str, float]:
    """Mean Recall@K and NDCG@K over users."""
    ranks = ranks.to(torch.float64)
    out = {}
    for k in ks:
        hit = ranks < k
        out[f"recall@{k}"] = hit.double().mean().item()
        out[f"ndcg@{k}"] = torch.where(hit, 1.0 / torch.log2(ranks + 2.0), torch.zeros_like(ranks)).mean().item()
    return out
