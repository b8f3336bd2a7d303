"""TIGER (Rajput et al. 2023): generative retrieval over semantic IDs with an encoder-decoder.

Each item is a tuple of L codes from a tokenizer (RQ-VAE in the paper). The encoder reads the
user's history as the flat sequence of its items' code tokens (optionally preceded by a hashed
user token); the decoder generates the next item's L codes, one level at a time, with
cross-entropy per level during training and trie-constrained beam search at inference, so
every generated ID names an item.

Token ids: 0 pad, 1 BOS, then `user_tokens` user tokens, then the code tokens of every level
(level l code c -> 2 + user_tokens + layout offset l + c).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.batching import flatten_ranges, length_bucketed_batches, pad_left
from ..data.dataset import SequenceDataset
from .base import MODELS, Recommender
from .layers import Dropout, init_weights
from .trie import CodeTrie

PAD, BOS, SPECIAL = 0, 1, 2
# Multiplier of the user-id hash (a large odd constant: spreads consecutive ids over the buckets).
_USER_HASH = 0x9E3779B1


@dataclass
class TIGERConfig:
    tokenizer: str = "rqvae"
    tokenizer_params: dict = field(default_factory=dict)
    d_model: int = 128
    encoder_layers: int = 4
    decoder_layers: int = 4
    num_heads: int = 6
    head_dim: int = 64  # attention inner size = num_heads * head_dim (may differ from d_model)
    ffn_size: int = 1024
    dropout: float = 0.1
    max_history: int = 20
    beam_size: int = 20  # raised to k when a caller asks for more items than this
    user_tokens: int = 0  # hashed user-token vocabulary (TIGER uses 2000); 0 = no user token
    init_std: float = 0.02


class Attention(nn.Module):
    """Multi-head attention whose inner size (heads x head_dim) is independent of the model size."""

    def __init__(self, dim: int, heads: int, head_dim: int, dropout: float):
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, head_dim, dropout
        inner = heads * head_dim
        self.query = nn.Linear(dim, inner)
        self.key_value = nn.Linear(dim, 2 * inner)
        self.out = nn.Linear(inner, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, inner) -> (B, h, T, hd)
        return x.view(x.shape[0], x.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def _merge(self, y: torch.Tensor) -> torch.Tensor:  # (B, h, T, hd) -> (B, T, d)
        return self.out(y.transpose(1, 2).reshape(y.shape[0], y.shape[2], -1))

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.key_value(x).chunk(2, dim=-1)
        return self._split(k), self._split(v)

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
               causal: bool = False) -> torch.Tensor:
        q = self._split(self.query(x))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self._merge(y)


def _ffn(dim: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), Dropout(dropout), nn.Linear(hidden, dim))


class EncoderBlock(nn.Module):
    def __init__(self, c: TIGERConfig):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.attn = Attention(c.d_model, c.num_heads, c.head_dim, c.dropout)
        self.ffn = _ffn(c.d_model, c.ffn_size, c.dropout)
        self.drop = Dropout(c.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.attn.attend(h, *self.attn.keys_values(h), mask=mask))
        return x + self.drop(self.ffn(self.norm2(x)))


class DecoderBlock(nn.Module):
    """Pre-norm: causal self-attention (optionally over cached keys/values), cross-attention, FFN."""

    def __init__(self, c: TIGERConfig):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(c.d_model) for _ in range(3))
        self.self_attn = Attention(c.d_model, c.num_heads, c.head_dim, c.dropout)
        self.cross_attn = Attention(c.d_model, c.num_heads, c.head_dim, c.dropout)
        self.ffn = _ffn(c.d_model, c.ffn_size, c.dropout)
        self.drop = Dropout(c.dropout)

    def forward(self, x: torch.Tensor, memory: tuple[torch.Tensor, torch.Tensor], memory_mask: torch.Tensor,
                cache: tuple[torch.Tensor, torch.Tensor] | None = None):
        """x: (N, T, d) with N = users x G rows per user (G beams, or 1); memory keys/values are
        per user (B, h, S, hd), so cross-attention runs on (B, G*T) queries without copying them.
        With `cache` (keys/values of the earlier positions), x holds only the new positions.
        Returns (x, keys/values of all positions so far)."""
        h = self.norm1(x)
        k, v = self.self_attn.keys_values(h)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        # Without a cache the block sees a whole prefix: causal. With one, the new (single)
        # position may see every cached one.
        x = x + self.drop(self.self_attn.attend(h, k, v, causal=cache is None and x.shape[1] > 1))
        n, t, d = x.shape
        users = memory[0].shape[0]
        h = self.norm2(x).reshape(users, (n // users) * t, d)
        x = x + self.drop(self.cross_attn.attend(h, *memory, mask=memory_mask).reshape(n, t, d))
        return x + self.drop(self.ffn(self.norm3(x))), (k, v)


@MODELS.register("tiger")
class TIGER(Recommender):
    config_class = TIGERConfig
    output = "ranked"

    def __init__(self, config: TIGERConfig, dataset: SequenceDataset, tokenizer=None):
        super().__init__(config, dataset)
        if tokenizer is None:
            from ..tokenizers.workflow import cached_tokenizer  # noqa: PLC0415 (pulls in the text encoder)
            tokenizer = cached_tokenizer(dataset, config.tokenizer, config.tokenizer_params)
        codes = np.asarray(tokenizer.codes, dtype=np.int64)
        if len(codes) != dataset.num_items:
            raise ValueError(f"tokenizer has codes for {len(codes)} items, the dataset has {dataset.num_items}")
        self.tokenizer = tokenizer
        self.num_levels = codes.shape[1]
        self.level_sizes = [max(int(s), int(codes[:, l].max()) + 1)
                            for l, s in enumerate(tokenizer.layout.level_sizes)]
        c = config
        d = c.d_model
        # Row i = item i's codes; row 0 (padding) is never turned into tokens.
        self.register_buffer("item_codes", torch.from_numpy(np.concatenate([np.zeros((1, self.num_levels),
                                                                                      np.int64), codes])),
                             persistent=False)
        self.trie = CodeTrie(codes, level_sizes=self.level_sizes)
        self.token_embedding = nn.Embedding(SPECIAL + c.user_tokens + sum(self.level_sizes), d, padding_idx=PAD)
        self.encoder_positions = nn.Embedding(c.max_history * self.num_levels, d)
        self.decoder_positions = nn.Embedding(self.num_levels, d)
        self.input_dropout = Dropout(c.dropout)
        self.encoder = nn.ModuleList(EncoderBlock(c) for _ in range(c.encoder_layers))
        self.encoder_norm = nn.LayerNorm(d)
        self.decoder = nn.ModuleList(DecoderBlock(c) for _ in range(c.decoder_layers))
        self.decoder_norm = nn.LayerNorm(d)
        self.output_layer = nn.Linear(d, sum(self.level_sizes))
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        init_weights(module, self.config.init_std)

    # ---- token layout -------------------------------------------------------------------
    @property
    def level_offsets(self) -> list[int]:
        return [int(o) for o in np.concatenate([[0], np.cumsum(self.level_sizes)[:-1]])]

    def code_tokens(self, codes: torch.Tensor) -> torch.Tensor:
        """(..., L) codes -> (..., L) token ids of the shared embedding."""
        offsets = torch.tensor(self.level_offsets, device=codes.device)[: codes.shape[-1]]
        return codes + offsets + SPECIAL + self.config.user_tokens

    # ---- encoder ------------------------------------------------------------------------
    def encode(self, history: torch.Tensor, users: torch.Tensor | None = None):
        """(B, T) left-padded items -> (memory keys/values per decoder layer, memory mask (B, 1, 1, S))."""
        batch, length = history.shape
        tokens = self.code_tokens(self.item_codes[history]).reshape(batch, length * self.num_levels)
        padding = (history == 0).repeat_interleave(self.num_levels, dim=1)
        tokens = tokens.masked_fill(padding, PAD)
        size = self.encoder_positions.num_embeddings
        if tokens.shape[1] > size:  # longer than max_history: keep the most recent items
            tokens, padding = tokens[:, -size:], padding[:, -size:]
        positions = torch.arange(size - tokens.shape[1], size, device=history.device)  # counted from the right
        x = self.token_embedding(tokens) + self.encoder_positions(positions)
        if self.config.user_tokens > 0:
            if users is None:
                users = torch.zeros(batch, dtype=torch.long, device=history.device)
            user_token = SPECIAL + (users.long() * _USER_HASH) % self.config.user_tokens
            x = torch.cat([self.token_embedding(user_token)[:, None], x], dim=1)
            padding = torch.cat([torch.zeros_like(padding[:, :1]), padding], dim=1)
        x = self.input_dropout(x)
        visible = ~padding
        visible[:, -1] |= padding.all(dim=1)  # an empty history still attends to one (zero) token
        mask = visible[:, None, None, :]
        for block in self.encoder:
            x = block(x, mask)
        x = self.encoder_norm(x)
        memory = [block.cross_attn.keys_values(x) for block in self.decoder]
        return memory, mask

    # ---- decoder ------------------------------------------------------------------------
    def decode(self, tokens: torch.Tensor, memory, memory_mask, start: int = 0, caches=None):
        """Decoder states (N, T, d) of `tokens` (N, T) at positions start.. ; N = users x G.
        Returns (states, new caches)."""
        positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        x = self.input_dropout(self.token_embedding(tokens) + self.decoder_positions(positions))
        new_caches = []
        for i, block in enumerate(self.decoder):
            x, kv = block(x, memory[i], memory_mask, None if caches is None else caches[i])
            new_caches.append(kv)
        return self.decoder_norm(x), new_caches

    def level_logits(self, states: torch.Tensor, level: int) -> torch.Tensor:
        """Logits over level `level`'s codes only (a slice of the output layer)."""
        begin = self.level_offsets[level]
        end = begin + self.level_sizes[level]
        return F.linear(states, self.output_layer.weight[begin:end], self.output_layer.bias[begin:end])

    # ---- training -----------------------------------------------------------------------
    def training_batches(self, dataset: SequenceDataset, batch_size: int,
                         rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
        """Every item of a user's training part after the first is a target, its history the
        (at most max_history) items before it; batches group similar history lengths."""
        starts, ends = dataset.train_ranges()
        counts = np.maximum(ends - starts - 1, 0)
        targets = flatten_ranges(starts + 1, ends)  # offsets of the target items
        users = np.repeat(np.arange(len(starts)), counts)
        hist_starts = np.maximum(np.repeat(starts, counts), targets - self.max_history)
        for rows in length_bucketed_batches(targets - hist_starts, batch_size, rng):
            history = pad_left(dataset.items, hist_starts[rows], targets[rows], self.max_history)
            yield {"history": torch.from_numpy(history), "users": torch.from_numpy(users[rows]),
                   "targets": torch.from_numpy(dataset.items[targets[rows]])}

    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        memory, mask = self.encode(batch["history"], batch.get("users"))
        codes = self.item_codes[batch["targets"]]  # (B, L)
        bos = torch.full_like(codes[:, :1], BOS)
        inputs = torch.cat([bos, self.code_tokens(codes[:, :-1])], dim=1)
        states, _ = self.decode(inputs, memory, mask)
        loss = 0.0
        for level in range(self.num_levels):
            loss = loss + F.cross_entropy(self.level_logits(states[:, level], level), codes[:, level])
        return loss / self.num_levels

    # ---- inference ----------------------------------------------------------------------
    def recommend(self, batch: dict[str, torch.Tensor], k: int, use_cache: bool = True) -> torch.Tensor:
        """Top-k items (B, k) by sequence log-probability under trie-constrained beam search.

        Every returned index is an item (distinct within a row); 0 fills rows whose user has
        fewer than k reachable items. `use_cache=False` recomputes the whole decoder prefix at
        every step (the slow reference the cached search must match).
        """
        items, _ = self.beam_search(batch["history"], k, batch.get("users"), use_cache=use_cache)
        return items

    @torch.no_grad()
    def beam_search(self, history: torch.Tensor, k: int, users: torch.Tensor | None = None,
                    use_cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(items (B, k), their log-probabilities (B, k), -inf where no item)."""
        trie = self.trie.to(history.device)
        memory, mask = self.encode(history, users)
        batch = history.shape[0]
        beams = max(self.config.beam_size, k)
        rows = batch * beams
        device = history.device
        # All beams start at the root with the BOS token; only beam 0 is alive, so the first
        # top-k picks distinct level-0 codes.
        scores = torch.full((batch, beams), -torch.inf, device=device)
        scores[:, 0] = 0.0
        prefix = torch.zeros(rows, dtype=torch.long, device=device)
        tokens = torch.full((rows, 1), BOS, dtype=torch.long, device=device)
        caches = None
        base = (torch.arange(batch, device=device) * beams)[:, None]
        for level in range(self.num_levels):
            if use_cache:
                states, caches = self.decode(tokens[:, -1:], memory, mask, start=level, caches=caches)
            else:
                states, _ = self.decode(tokens, memory, mask)
            logits = self.level_logits(states[:, -1], level)  # (rows, size)
            allowed, child = trie.step(level, prefix)
            logp = torch.log_softmax(logits.float().masked_fill(~allowed, -torch.inf), dim=-1)
            size = logp.shape[1]
            total = (scores.reshape(rows, 1) + logp).reshape(batch, beams * size)
            scores, picked = total.topk(beams, dim=1)  # (B, beams)
            parent = (base + picked // size).reshape(-1)
            code = (picked % size).reshape(-1)
            prefix = child.reshape(rows, size)[parent, code].clamp(min=0)  # dead beams: any valid id
            tokens = torch.cat([tokens[parent], self.code_tokens_level(code, level)[:, None]], dim=1)
            if caches is not None:
                caches = [(kc[parent], vc[parent]) for kc, vc in caches]
        # After the last level `prefix` holds item indices; dead beams (score -inf) give 0.
        items = prefix.reshape(batch, beams)
        items = torch.where(torch.isfinite(scores), items, torch.zeros_like(items))
        return items[:, :k], scores[:, :k]

    def code_tokens_level(self, code: torch.Tensor, level: int) -> torch.Tensor:
        return code + self.level_offsets[level] + SPECIAL + self.config.user_tokens

    # ---- cold start ---------------------------------------------------------------------
    def add_items(self, codes: np.ndarray) -> np.ndarray:
        """Adds items with the given final codes (m x L), e.g. from `tokenizer.add_items(embeddings)`;
        returns their new item indices (num_items + 1 ...). Levels whose code range grows get
        new (freshly initialised) embedding and output rows; the rest of the weights is kept.
        Note: the trie and code table are derived state, not part of the state dict."""
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, self.num_levels)
        if (codes < 0).any():
            raise ValueError("codes must be non-negative")
        new_items = np.arange(self.num_items + 1, self.num_items + 1 + len(codes))
        sizes = [max(s, int(codes[:, l].max()) + 1) if len(codes) else s for l, s in enumerate(self.level_sizes)]
        if sizes != self.level_sizes:
            self._grow_vocabulary(sizes)
        device = self.item_codes.device
        self.item_codes = torch.cat([self.item_codes, torch.from_numpy(codes).to(device)])
        self.trie.add(codes, new_items, self.level_sizes)
        self.num_items += len(codes)
        return new_items

    def _grow_vocabulary(self, sizes: list[int]) -> None:
        old_offsets, old_sizes = self.level_offsets, list(self.level_sizes)
        self.level_sizes = sizes
        new_offsets = self.level_offsets
        shift = SPECIAL + self.config.user_tokens
        emb, out = self.token_embedding, self.output_layer
        new_emb = nn.Embedding(shift + sum(sizes), emb.embedding_dim, padding_idx=PAD)
        new_out = nn.Linear(out.in_features, sum(sizes))
        self._init_weights(new_emb)
        self._init_weights(new_out)
        new_emb, new_out = new_emb.to(emb.weight), new_out.to(out.weight)
        with torch.no_grad():
            new_emb.weight[:shift] = emb.weight[:shift]
            for old, new, size in zip(old_offsets, new_offsets, old_sizes):
                new_emb.weight[shift + new:shift + new + size] = emb.weight[shift + old:shift + old + size]
                new_out.weight[new:new + size] = out.weight[old:old + size]
                new_out.bias[new:new + size] = out.bias[old:old + size]
        self.token_embedding, self.output_layer = new_emb, new_out
