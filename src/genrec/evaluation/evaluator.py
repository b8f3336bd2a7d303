"""One evaluator for every model: full ranking over the whole catalogue, no sampled negatives."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.batching import pad_left
from ..data.dataset import SequenceDataset
from ..models.base import Recommender
from .metrics import metrics_from_ranks, ranks_from_lists, ranks_from_scores


@dataclass
class EvalConfig:
    """Evaluation settings, stated explicitly (they change the numbers)."""

    ks: list[int] = field(default_factory=lambda: [5, 10, 20, 50])
    batch_size: int = 1024
    # Mask items already in the user's history before ranking. Off by default, as in
    # TIGER-style generative evaluation, so score and ranked-list models are compared alike.
    exclude_history: bool = False


class Evaluator:
    def __init__(self, config: EvalConfig, dataset: SequenceDataset):
        self.config = config
        self.dataset = dataset

    def evaluate(self, model: Recommender, split: str, device: torch.device | str = "cpu",
                 progress: bool = True, max_users: int = 0, ks: tuple[int, ...] | None = None) -> dict[str, float]:
        """Metrics for `split` ('valid' or 'test'): recall@K, ndcg@K, plus invalid_rate for ranked models.

        `max_users` > 0 evaluates a fixed random subset of that many users (the same subset
        on every call): a cheaper estimate for early stopping of slow-to-decode models.
        `ks` overrides the config's cut-offs; a ranked model decodes max(ks) items, so fewer
        cut-offs can mean a narrower, cheaper beam."""
        ks = tuple(sorted(ks or self.config.ks))
        rows, ranks, invalid_rate = self.user_ranks(model, split, max(ks), device, progress, max_users)
        result = metrics_from_ranks(ranks, ks)
        result["users"] = int(len(rows))
        if invalid_rate is not None:
            result["invalid_rate"] = invalid_rate
        return result

    def user_ranks(self, model: Recommender, split: str, depth: int, device: torch.device | str = "cpu",
                   progress: bool = True, max_users: int = 0) -> tuple[np.ndarray, torch.Tensor, float | None]:
        """(rows of `split` evaluated, each one's 0-based target rank (+inf when a ranked model's
        top `depth` misses it), invalid-ID rate of a ranked model or None): the per-user
        results behind `evaluate`, for breakdowns such as benchmarks/by_target_popularity.py."""
        data = self.dataset.eval_split(split)
        rows = np.arange(len(data.users))
        if 0 < max_users < len(rows):
            rows = np.sort(np.random.default_rng(0).choice(len(rows), max_users, replace=False))
        lengths = data.ends[rows] - data.starts[rows]
        order = rows[np.argsort(lengths, kind="stable")]  # similar lengths share a batch
        ranks, invalid, returned = [], 0, 0
        model.eval()
        batches = range(0, len(order), self.config.batch_size)
        with torch.no_grad():
            for begin in tqdm(batches, desc=f"eval {split}", leave=False, disable=None if progress else True):
                rows = order[begin:begin + self.config.batch_size]
                history = torch.from_numpy(pad_left(self.dataset.items, data.starts[rows], data.ends[rows],
                                                    model.max_history)).to(device)
                targets = torch.from_numpy(data.targets[rows]).to(device)
                batch = {"history": history, "users": torch.from_numpy(data.users[rows]).to(device)}
                if model.output == "scores":
                    scores = model.full_sort_predict(batch).float()
                    scores[:, 0] = -torch.inf
                    if self.config.exclude_history:
                        seen = torch.from_numpy(pad_left(self.dataset.items, data.starts[rows], data.ends[rows],
                                                         len(self.dataset.items))).to(device)
                        scores.scatter_(1, seen, -torch.inf)
                        scores[:, 0] = -torch.inf
                    ranks.append(ranks_from_scores(scores, targets).cpu())
                else:
                    ranked = model.recommend(batch, depth)
                    invalid += int((ranked < 0).sum())
                    returned += int((ranked != 0).sum())
                    ranks.append(ranks_from_lists(ranked, targets).cpu())
        invalid_rate = invalid / max(1, returned) if model.output == "ranked" else None
        return order, torch.cat(ranks), invalid_rate
