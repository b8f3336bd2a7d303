import numpy as np
import pytest
import torch

from genrec.data import prepare_dataset, preset
from genrec.evaluation import EvalConfig, Evaluator
from genrec.models.base import Recommender


@pytest.fixture(scope="module")
def small():
    return prepare_dataset(preset("synthetic", options={"num_items": 80, "num_users": 60}), cache=False)


class Oracle(Recommender):
    """Scores the held-out item highest: a perfect model, to check the plumbing."""

    output = "scores"

    def __init__(self, dataset, targets):
        super().__init__(None, dataset)
        self.max_history = 1000
        self.lookup = {tuple(dataset.items[s:e].tolist()): t for s, e, t in
                       zip(targets.starts, targets.ends, targets.targets)}

    def full_sort_predict(self, batch):
        scores = torch.zeros(batch["history"].shape[0], self.num_items + 1)
        for row, history in enumerate(batch["history"].tolist()):
            scores[row, self.lookup[tuple(i for i in history if i)]] = 1.0
        return scores


class FixedLists(Recommender):
    """A 'generative' model returning the same list for everyone, with one invalid ID."""

    output = "ranked"

    def recommend(self, batch, k):
        row = torch.tensor([-1] + list(range(1, k)))
        return row.expand(batch["history"].shape[0], -1)


def test_perfect_scores_give_perfect_metrics(small):
    split = small.eval_split("test")
    result = Evaluator(EvalConfig(batch_size=7), small).evaluate(Oracle(small, split), "test", progress=False)
    assert result["recall@5"] == 1.0 and result["ndcg@5"] == 1.0 and result["users"] == small.num_users


def test_ranked_lists_and_invalid_rate(small):
    model = FixedLists(None, small)
    result = Evaluator(EvalConfig(ks=[5, 10]), small).evaluate(model, "valid", progress=False)
    targets = small.eval_split("valid").targets
    # list = [-1, 1, 2, ..., 9]: item t sits at 0-based position t for t in 1..9
    hits5 = np.isin(targets, range(1, 5)).mean()
    assert result["recall@5"] == pytest.approx(hits5)
    assert result["invalid_rate"] == pytest.approx(1 / 10)


def test_exclude_history_masks_seen_items(small):
    class SeenFirst(Recommender):
        def full_sort_predict(self, batch):
            scores = torch.zeros(batch["history"].shape[0], self.num_items + 1)
            return scores.scatter(1, batch["history"], 1.0)

    model = SeenFirst(None, small)
    model.max_history = 1000
    on = Evaluator(EvalConfig(exclude_history=True), small).evaluate(model, "test", progress=False)
    off = Evaluator(EvalConfig(exclude_history=False), small).evaluate(model, "test", progress=False)
    split = small.eval_split("test")
    repeats = np.mean([t in small.items[s:e] for s, e, t in zip(split.starts, split.ends, split.targets)])
    # with masking a repeated target can never be found; without, seen items lead the ranking
    assert on["recall@50"] <= 1 - repeats + 1e-9
    assert off["recall@5"] >= 0.0


def test_max_users_evaluates_a_fixed_subset(small):
    """A user subset: the same users every call, and metrics computed over them only."""
    model = FixedLists(None, small)
    evaluator = Evaluator(EvalConfig(ks=[5]), small)
    first = evaluator.evaluate(model, "valid", progress=False, max_users=20)
    assert first["users"] == 20 and first == evaluator.evaluate(model, "valid", progress=False, max_users=20)
    chosen = np.sort(np.random.default_rng(0).choice(small.num_users, 20, replace=False))
    targets = small.eval_split("valid").targets[chosen]
    assert first["recall@5"] == pytest.approx(np.isin(targets, range(1, 5)).mean())
    assert evaluator.evaluate(model, "valid", progress=False, max_users=10_000)["users"] == small.num_users


def test_ks_override_decodes_only_as_deep_as_its_largest_cut_off(small):
    """`ks` replaces the config's cut-offs: a ranked model is asked for max(ks) items only."""
    asked = []  # the k of each recommend call

    class Recording(FixedLists):
        def recommend(self, batch, k):
            asked.append(k)
            return super().recommend(batch, k)

    result = Evaluator(EvalConfig(ks=[5, 10, 50]), small).evaluate(Recording(None, small), "valid", progress=False,
                                                                   ks=(10,))
    assert asked and set(asked) == {10}
    assert {k for k in result if "@" in k} == {"recall@10", "ndcg@10"}
