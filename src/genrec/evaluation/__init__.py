"""Full-ranking evaluation (Recall@K, NDCG@K) shared by every model."""

from .evaluator import EvalConfig, Evaluator
from .metrics import metrics_from_ranks, ranks_from_lists, ranks_from_scores

__all__ = ["EvalConfig", "Evaluator", "metrics_from_ranks", "ranks_from_lists", "ranks_from_scores"]
