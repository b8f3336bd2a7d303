"""The model contract every recommender follows, and the registry of models by name.

RecBole-style: `calculate_loss(batch)` for training, `full_sort_predict(batch)` for
score-based models (a score for every item) or `recommend(batch, k)` for generative
models (a ranked list of item indices). Batches are dicts of tensors; the evaluation
batch holds `history` (B, T) item indices, left-padded with 0, most recent item last.
"""

from __future__ import annotations

from typing import ClassVar, Iterator

import numpy as np
import torch
from torch import nn

from ..config import from_dict
from ..data.dataset import SequenceDataset
from ..registry import Registry

MODELS: Registry[type["Recommender"]] = Registry("model")


class Recommender(nn.Module):
    """Base class. Subclasses set `config_class` (a dataclass) and implement the contract."""

    config_class: ClassVar[type]
    # "scores": full_sort_predict gives (B, num_items + 1); "ranked": recommend gives (B, k).
    output: ClassVar[str] = "scores"
    # False for models fitted from counts (popularity): the trainer skips gradient steps.
    trainable: ClassVar[bool] = True

    def __init__(self, config, dataset: SequenceDataset):
        super().__init__()
        self.config = config
        self.num_items = dataset.num_items
        self.max_history = int(getattr(config, "max_history", 50))

    def training_batches(self, dataset: SequenceDataset, batch_size: int,
                         rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
        raise NotImplementedError

    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def batch_samples(self, batch: dict[str, torch.Tensor]) -> int:
        """Training samples (next-item targets) in a batch, for throughput figures."""
        return next(iter(batch.values())).shape[0]

    def full_sort_predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def recommend(self, batch: dict[str, torch.Tensor], k: int) -> torch.Tensor:
        """Top-k item indices (B, k); -1 marks a generated ID that maps to no item."""
        scores = self.full_sort_predict(batch)
        scores[:, 0] = -torch.inf
        return scores.topk(k, dim=1).indices

    def fit_counts(self, dataset: SequenceDataset) -> None:
        """Hook for models estimated from the training data directly (no gradient steps)."""

    def item_embeddings(self) -> torch.Tensor:
        """(num_items + 1, d) learnt item vectors, row i = item i: the behaviour vectors that
        behaviour-aware semantic IDs cluster. Only models with a per-item table have them."""
        raise NotImplementedError(f"{type(self).__name__} has no per-item embedding table")

    @classmethod
    def has_item_embeddings(cls) -> bool:
        """Whether the class implements item_embeddings(), so a config can be checked before training."""
        return cls.item_embeddings is not Recommender.item_embeddings


def build_model(name: str, params: dict, dataset: SequenceDataset, **components) -> Recommender:
    """Instantiates model `name` with its typed config built from `params`; `components` are
    prebuilt parts the model accepts (e.g. a fitted `tokenizer`)."""
    cls = MODELS.get(name)
    config = from_dict(cls.config_class, params or {}, "model")
    return cls(config, dataset, **components)
