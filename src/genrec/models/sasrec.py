"""SASRec (Kang & McAuley 2018) trained with cross-entropy over the full catalogue.

The strong modern variant (as in "gSASRec" / Klenitskiy & Vasilev 2023): a causal
transformer over the item history, learned positions, item embeddings tied with the
output layer, and softmax CE over every item instead of sampled negatives. Every position
of a training sequence predicts its next item in one forward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.batching import length_bucketed_batches, pad_left
from ..data.dataset import SequenceDataset
from .base import MODELS, Recommender
from .layers import Dropout, TransformerBlock, causal_padding_mask, check_dropout, init_weights


@dataclass
class SASRecConfig:
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    ffn_size: int = 256
    dropout: float = 0.5
    max_history: int = 50
    # Cut training sequences longer than max_history into several windows (uses all data
    # on long-history datasets like MovieLens); off = only each user's latest window.
    all_windows: bool = True
    init_std: float = 0.02

    def __post_init__(self):
        check_dropout(self.dropout, "model.dropout")


@MODELS.register("sasrec")
class SASRec(Recommender):
    config_class = SASRecConfig

    def __init__(self, config: SASRecConfig, dataset: SequenceDataset):
        super().__init__(config, dataset)
        d = config.hidden_size
        self.item_embedding = nn.Embedding(dataset.num_items + 1, d, padding_idx=0)
        self.position_embedding = nn.Embedding(config.max_history, d)
        self.input_dropout = Dropout(config.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(d, config.num_heads, config.ffn_size, config.dropout)
                                    for _ in range(config.num_layers))
        self.final_norm = nn.LayerNorm(d)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        init_weights(module, self.config.init_std)

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        """(B, T) left-padded item indices -> (B, T, d) states; positions count from the right."""
        length = history.shape[1]
        positions = torch.arange(self.max_history - length, self.max_history, device=history.device)
        x = self.item_embedding(history) * math.sqrt(self.config.hidden_size) + self.position_embedding(positions)
        x = self.input_dropout(x)
        mask = causal_padding_mask(history == 0)
        for block in self.blocks:
            x = block(x, mask)
        return self.final_norm(x)

    def training_batches(self, dataset: SequenceDataset, batch_size: int,
                         rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
        starts, ends = dataset.train_ranges()
        window = self.max_history + 1  # inputs + the shifted targets
        if self.config.all_windows:
            # Windows of `window` items ending at end, end - max_history, ... (one item overlap,
            # so every training transition is predicted exactly once).
            counts = np.maximum(np.ceil((ends - starts - 1) / self.max_history), 1).astype(np.int64)
            ends = np.repeat(ends, counts) - self.max_history * (
                np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
            starts = np.repeat(starts, counts)
        starts = np.maximum(starts, ends - window)
        keep = ends - starts >= 2
        starts, ends = starts[keep], ends[keep]
        for rows in length_bucketed_batches(ends - starts, batch_size, rng):
            sequences = torch.from_numpy(pad_left(dataset.items, starts[rows], ends[rows], window))
            inputs, targets = sequences[:, :-1], sequences[:, 1:].clone()
            targets[inputs == 0] = 0  # the first item has no history to predict it from
            yield {"history": inputs, "targets": targets}

    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        states = self.encode(batch["history"])
        targets = batch["targets"]
        selected = targets > 0
        logits = states[selected] @ self.item_embedding.weight.T
        logits[:, 0] = -torch.inf
        return F.cross_entropy(logits, targets[selected])

    def full_sort_predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encode(batch["history"])[:, -1] @ self.item_embedding.weight.T

    def item_embeddings(self) -> torch.Tensor:
        return self.item_embedding.weight.detach()
