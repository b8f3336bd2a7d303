import math

import pytest
import torch

from genrec.evaluation import metrics_from_ranks, ranks_from_lists, ranks_from_scores


def test_ranks_from_scores_counts_items_ahead():
    scores = torch.tensor([[0.0, 0.9, 0.1, 0.5, 0.3],
                           [0.0, 0.1, 0.2, 0.3, 0.4]])
    ranks = ranks_from_scores(scores, torch.tensor([3, 1]))
    assert ranks.tolist() == [1.0, 3.0]  # item 3 behind item 1; item 1 behind items 2, 3, 4


def test_ties_count_against_the_target():
    scores = torch.zeros(1, 6)
    assert ranks_from_scores(scores, torch.tensor([2])).item() == 5.0


def test_ranks_from_lists_absent_is_infinite():
    ranked = torch.tensor([[4, 2, 7], [1, 3, 5]])
    ranks = ranks_from_lists(ranked, torch.tensor([7, 9]))
    assert ranks[0].item() == 2.0 and math.isinf(ranks[1].item())


def test_metrics_hand_computed():
    # ranks 0, 1, 4, 12 (0-based) for four users.
    m = metrics_from_ranks(torch.tensor([0.0, 1.0, 4.0, 12.0]), (1, 5, 10, 20))
    assert m["recall@1"] == pytest.approx(0.25)
    assert m["recall@5"] == pytest.approx(0.75)
    assert m["recall@10"] == pytest.approx(0.75)
    assert m["recall@20"] == pytest.approx(1.0)
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6)) / 4)
    assert m["ndcg@20"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6) + 1 / math.log2(14)) / 4)
