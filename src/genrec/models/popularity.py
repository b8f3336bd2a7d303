"""Popularity baseline: every user gets the items most often seen in training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.dataset import SequenceDataset
from .base import MODELS, Recommender


@dataclass
class PopularityConfig:
    max_history: int = 1  # history is ignored; 1 keeps evaluation batches tiny


@MODELS.register("popularity")
class Popularity(Recommender):
    config_class = PopularityConfig
    trainable = False

    def __init__(self, config: PopularityConfig, dataset: SequenceDataset):
        super().__init__(config, dataset)
        self.register_buffer("counts", torch.zeros(dataset.num_items + 1))

    def fit_counts(self, dataset: SequenceDataset) -> None:
        """Counts over the training part only: all but each user's last two items."""
        self.counts.copy_(torch.from_numpy(dataset.train_item_counts().astype(np.float32)))

    def full_sort_predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.counts[None].expand(batch["history"].shape[0], -1).clone()
