"""TIGER (Rajput et al. 2023): generative retrieval over semantic IDs with a T5 encoder-decoder.

Each item is a tuple of L codes from a tokenizer (RQ-VAE in the paper). The encoder reads the
user's history as the flat sequence of its items' code tokens (optionally preceded by a hashed
user token); the decoder generates the next item's L codes. Training is cross-entropy over the
whole token vocabulary under teacher forcing; inference is beam search restricted by a trie
to codes that name an item, scoring each item by its sequence log-probability.

The network is T5 (v1.0) layer for layer: RMS layer norms, no biases, unscaled attention
with bucketed relative position biases (one table per stack, in its first layer), ReLU
feed-forward, output layer tied to the token embedding (applied to states scaled by
d_model^-1/2). `export_t5()` gives a Hugging Face `T5Config` and state
dict holding the same weights, so `transformers` can run a trained model unchanged.

Two training formulations (`causal_encoder`):
- False (the paper): one sample per (history prefix, next item); the encoder is bidirectional
  and runs once per sample, so a user of n items costs ~n^2/2 history items of encoder work.
- True (genrec's fast variant): the encoder attends only to the same or earlier items, so one
  pass over a user's window encodes every prefix at once and the decoder predicts every next
  item of the window in the same step, each cross-attending to the items before it.

With `pool_history_codes` (genrec's, not the paper's) a history item enters the encoder as one
position, the sum of its L code-token embeddings scaled by L^-1/2, instead of L positions: the
encoder and the decoder's cross-attention then cost about L times less.

Token ids: 0 pad, 1 BOS (decoder start), then `user_tokens` user tokens, then the code tokens
of every level (level l code c -> 2 + user_tokens + offset of level l + c).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import from_dict
from ..data.batching import flatten_ranges, length_bucketed_batches, pad_left
from ..data.dataset import SequenceDataset
from ..tokenizers import TOKENIZERS
from .base import MODELS, Recommender
from .layers import Dropout, check_dropout
from .trie import CodeTrie

PAD, BOS, SPECIAL = 0, 1, 2
# Multiplier of the user-id hash (a large odd constant: spreads consecutive ids over the buckets).
_USER_HASH = 0x9E3779B1
_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}
BEAM_SCORINGS = ("vocabulary", "renormalized")


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
    activation: str = "relu"  # relu (T5 v1.0) | gelu
    dropout: float = 0.1
    relative_buckets: int = 32
    relative_max_distance: int = 128
    max_history: int = 20  # items
    causal_encoder: bool = False  # True: the fast formulation (every target of a window per pass)
    beam_size: int = 20  # raised to k when a caller asks for more items than this
    user_tokens: int = 0  # hashed user-token vocabulary (TIGER uses 2000); 0 = no user token
    # True (not in the paper): a history item is one encoder position, the sum of its code
    # tokens' embeddings, so the encoder reads L times fewer positions.
    pool_history_codes: bool = False
    # How beam search scores a code: "vocabulary" = its log-probability under the softmax over
    # the whole vocabulary (what Hugging Face's constrained generate computes); "renormalized" =
    # the softmax over only the codes the trie allows after that prefix (the model conditioned
    # on the ID being valid).
    beam_scoring: str = "vocabulary"

    def __post_init__(self):
        check_dropout(self.dropout, "model.dropout")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"model.activation: '{self.activation}' is not one of {sorted(_ACTIVATIONS)}")
        if self.beam_scoring not in BEAM_SCORINGS:
            raise ValueError(f"model.beam_scoring: '{self.beam_scoring}' is not one of {list(BEAM_SCORINGS)}")
        # Checked here so a typo fails when the config is read, not after the text embeddings.
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"model.tokenizer: '{self.tokenizer}' is not one of {TOKENIZERS.names()}")
        tokenizer_class = TOKENIZERS.get(self.tokenizer)  # built as the run builds it, so its own checks run too
        tokenizer_class(from_dict(tokenizer_class.Config, self.tokenizer_params, "model.tokenizer_params"))


def _bucket(relative: torch.Tensor, bidirectional: bool, buckets: int, max_distance: int) -> torch.Tensor:
    """T5's relative-position buckets: exact for small distances, logarithmic up to max_distance.

    `relative` = key position - query position. Bidirectional tables spend half the buckets on
    keys after the query; causal ones only see keys at or before it.
    """
    out = torch.zeros_like(relative)
    if bidirectional:
        buckets //= 2
        out += (relative > 0).long() * buckets
        distance = relative.abs()
    else:
        distance = (-relative).clamp(min=0)
    exact = buckets // 2
    far = exact + (torch.log(distance.float().clamp(min=1) / exact) / math.log(max_distance / exact)
                   * (buckets - exact)).long()
    far = far.clamp(max=buckets - 1)
    return out + torch.where(distance < exact, distance, far)


class RelativePositionBias(nn.Module):
    def __init__(self, heads: int, buckets: int, max_distance: int, bidirectional: bool):
        super().__init__()
        self.buckets, self.max_distance, self.bidirectional = buckets, max_distance, bidirectional
        self.table = nn.Embedding(buckets, heads)

    def forward(self, queries: int, keys: int, query_start: int = 0) -> torch.Tensor:
        """(1, heads, queries, keys) bias for query positions query_start.. against keys 0.."""
        device = self.table.weight.device
        relative = (torch.arange(keys, device=device)[None, :]
                    - torch.arange(query_start, query_start + queries, device=device)[:, None])
        bucket = _bucket(relative, self.bidirectional, self.buckets, self.max_distance)
        return self.table(bucket).permute(2, 0, 1)[None]


def additive_mask(visible: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean visibility -> 0 / most negative float, to add to attention logits."""
    return torch.zeros(visible.shape, dtype=dtype, device=visible.device).masked_fill(~visible, torch.finfo(dtype).min)


def cross_attention_bias(visible_key: torch.Tensor) -> torch.Tensor:
    """(B, S) encoder positions a decoder may attend to -> the additive bias (B, 1, 1, S) every
    decoder query of a user shares (fp32: attention runs in fp32, `Attention.attend`)."""
    return additive_mask(visible_key[:, None, None], torch.float32)


class Attention(nn.Module):
    """T5 attention: no biases, no 1/sqrt(d) scaling (the initialisation accounts for it)."""

    def __init__(self, dim: int, heads: int, head_dim: int, dropout: float):
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, head_dim, dropout
        inner = heads * head_dim
        self.q, self.k, self.v = (nn.Linear(dim, inner, bias=False) for _ in range(3))
        self.o = nn.Linear(inner, dim, bias=False)

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, inner) -> (B, h, T, hd)
        return x.view(x.shape[0], x.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._split(self.k(x)), self._split(self.v(x))

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """`bias`: additive (position bias + mask), broadcastable to (B, h, T, S)."""
        q = self._split(self.q(x))
        # Always fp32, also inside a bf16 autocast step: CUDA's fused bf16 kernel made training
        # diverge on these unscaled logits, fp32 or the reference kernel did not (docs/results.md);
        # on the CPU it costs no time.
        with torch.autocast(x.device.type, enabled=False):
            y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=bias.float(), scale=1.0,
                                               dropout_p=self.dropout if self.training else 0.0)
        return self.o(y.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))


class FeedForward(nn.Module):
    def __init__(self, c: TIGERConfig):
        super().__init__()
        self.wi = nn.Linear(c.d_model, c.ffn_size, bias=False)
        self.wo = nn.Linear(c.ffn_size, c.d_model, bias=False)
        self.act = _ACTIVATIONS[c.activation]
        self.drop = Dropout(c.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.wo(self.drop(self.act(self.wi(x))))


def _norm(c: TIGERConfig) -> nn.RMSNorm:
    return nn.RMSNorm(c.d_model, eps=1e-6)


class EncoderBlock(nn.Module):
    def __init__(self, c: TIGERConfig):
        super().__init__()
        self.attn_norm, self.ffn_norm = _norm(c), _norm(c)
        self.attn = Attention(c.d_model, c.num_heads, c.head_dim, c.dropout)
        self.ffn = FeedForward(c)
        self.drop = Dropout(c.dropout)

    def sublayers(self) -> list[tuple[str, nn.Module, nn.Module]]:
        """(T5 name, norm, module) of each residual sublayer, in order (for `export_t5`)."""
        return [("SelfAttention", self.attn_norm, self.attn), ("DenseReluDense", self.ffn_norm, self.ffn)]

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        h = self.attn_norm(x)
        x = x + self.drop(self.attn.attend(h, *self.attn.keys_values(h), bias))
        return x + self.drop(self.ffn(self.ffn_norm(x)))


class DecoderBlock(nn.Module):
    """Causal self-attention (optionally over cached keys/values), cross-attention, FFN."""

    def __init__(self, c: TIGERConfig):
        super().__init__()
        self.self_norm, self.cross_norm, self.ffn_norm = _norm(c), _norm(c), _norm(c)
        self.self_attn = Attention(c.d_model, c.num_heads, c.head_dim, c.dropout)
        self.cross_attn = Attention(c.d_model, c.num_heads, c.head_dim, c.dropout)
        self.ffn = FeedForward(c)
        self.drop = Dropout(c.dropout)

    def sublayers(self) -> list[tuple[str, nn.Module, nn.Module]]:
        """(T5 name, norm, module) of each residual sublayer, in order (for `export_t5`)."""
        return [("SelfAttention", self.self_norm, self.self_attn), ("EncDecAttention", self.cross_norm, self.cross_attn),
                ("DenseReluDense", self.ffn_norm, self.ffn)]

    def forward(self, x: torch.Tensor, self_bias: torch.Tensor, memory: tuple[torch.Tensor, torch.Tensor],
                memory_bias: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None):
        """x: (N, T, d) with N = users x G rows per user (G beams or targets); memory keys/values
        are per user (B, h, S, hd), so cross-attention runs on (B, G*T) queries without copying
        them, and `memory_bias` is (B, 1, 1 or G*T, S). With `cache` (keys/values of the earlier
        positions) x holds only the new positions. Returns (x, keys/values of all positions)."""
        h = self.self_norm(x)
        k, v = self.self_attn.keys_values(h)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        x = x + self.drop(self.self_attn.attend(h, k, v, self_bias))
        n, t, d = x.shape
        users = memory[0].shape[0]
        h = self.cross_norm(x).reshape(users, (n // users) * t, d)
        x = x + self.drop(self.cross_attn.attend(h, *memory, memory_bias).reshape(n, t, d))
        return x + self.drop(self.ffn(self.ffn_norm(x))), (k, v)


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
        # Row i = item i's codes; row 0 (padding) is never turned into tokens.
        self.register_buffer("item_codes", torch.from_numpy(np.concatenate([np.zeros((1, self.num_levels),
                                                                                      np.int64), codes])),
                             persistent=False)
        self.trie = CodeTrie(codes, level_sizes=self.level_sizes)
        self.token_embedding = nn.Embedding(self.vocab_size, c.d_model)
        self.input_dropout = Dropout(c.dropout)
        self.encoder_positions = RelativePositionBias(c.num_heads, c.relative_buckets, c.relative_max_distance,
                                                      bidirectional=True)
        self.encoder = nn.ModuleList(EncoderBlock(c) for _ in range(c.encoder_layers))
        self.encoder_norm = _norm(c)
        self.decoder_positions = RelativePositionBias(c.num_heads, c.relative_buckets, c.relative_max_distance,
                                                      bidirectional=False)
        self.decoder = nn.ModuleList(DecoderBlock(c) for _ in range(c.decoder_layers))
        self.decoder_norm = _norm(c)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """T5's initialisation: unit-variance activations without attention scaling."""
        c = self.config
        if isinstance(module, Attention):
            nn.init.normal_(module.q.weight, std=(c.d_model * c.head_dim) ** -0.5)
            nn.init.normal_(module.k.weight, std=c.d_model ** -0.5)
            nn.init.normal_(module.v.weight, std=c.d_model ** -0.5)
            nn.init.normal_(module.o.weight, std=(c.num_heads * c.head_dim) ** -0.5)
        elif isinstance(module, FeedForward):
            nn.init.normal_(module.wi.weight, std=c.d_model ** -0.5)
            nn.init.normal_(module.wo.weight, std=c.ffn_size ** -0.5)
        elif isinstance(module, RelativePositionBias):
            nn.init.normal_(module.table.weight, std=c.d_model ** -0.5)
        elif module is self:
            nn.init.normal_(self.token_embedding.weight, std=1.0)

    # ---- token layout -------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return SPECIAL + self.config.user_tokens + sum(self.level_sizes)

    @property
    def level_offsets(self) -> list[int]:
        """First token id of each level's codes."""
        starts = np.concatenate([[0], np.cumsum(self.level_sizes)[:-1]])
        return [int(o) + SPECIAL + self.config.user_tokens for o in starts]

    def code_tokens(self, codes: torch.Tensor) -> torch.Tensor:
        """(..., L') codes of the first L' levels -> their token ids."""
        offsets = torch.tensor(self.level_offsets, device=codes.device)[: codes.shape[-1]]
        return codes + offsets

    def encoder_tokens(self, history: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) left-padded items -> encoder token ids (0 = padding), at most max_history items,
        after the user token when there is one: (B, S) with one token per position, or
        (B, S, L) with `pool_history_codes` (an item's L tokens share a position; the user
        token's position holds it and padding)."""
        history = history[:, -self.max_history:]
        batch, length = history.shape
        tokens = self.code_tokens(self.item_codes[history]).masked_fill((history == 0)[..., None], PAD)
        if not self.config.pool_history_codes:
            tokens = tokens.reshape(batch, length * self.num_levels)
        if self.config.user_tokens > 0:
            if users is None:
                users = torch.zeros(batch, dtype=torch.long, device=history.device)
            user_token = SPECIAL + (users.long() * _USER_HASH) % self.config.user_tokens
            if self.config.pool_history_codes:
                user_token = F.pad(user_token[:, None], (0, self.num_levels - 1), value=PAD)
            tokens = torch.cat([user_token[:, None], tokens], dim=1)
        return tokens

    def semantic_id(self, item: int) -> list[int]:
        """Item `item`'s codes, one per level (the last one the collision digit, if any)."""
        return self.item_codes[item].tolist()

    # ---- encoder ------------------------------------------------------------------------
    def encode(self, tokens: torch.Tensor):
        """Encoder tokens from `encoder_tokens` -> (memory keys/values per decoder layer, key
        visibility (B, S)).

        With `causal_encoder`, a position sees the user token and the positions of its own and
        earlier items only (padding aside)."""
        length = tokens.shape[1]
        x = self.token_embedding(tokens)
        if self.config.pool_history_codes:  # (B, S, L): the sum of an item's code embeddings, unit variance
            present = tokens != PAD
            x = (x * present[..., None]).sum(dim=2) * tokens.shape[2] ** -0.5
            visible_key = present.any(dim=2)
        else:
            visible_key = tokens != PAD
        visible_key[:, -1] |= ~visible_key.any(dim=1)  # an empty history attends to one token
        visible = visible_key[:, None, None, :]
        if self.config.causal_encoder:
            visible = visible & self._block_causal(length, tokens.device)[None, None]
        bias = self.encoder_positions(length, length) + additive_mask(visible, torch.float32)
        x = self.input_dropout(x)
        for block in self.encoder:
            x = block(x, bias)
        x = self.input_dropout(self.encoder_norm(x))
        memory = [block.cross_attn.keys_values(x) for block in self.decoder]
        return memory, visible_key

    def _item_slots(self, length: int, device) -> torch.Tensor:
        """Item slot of each of `length` right-aligned encoder positions: -1 for the last item's
        tokens, -2 for the one before ...; the user token gets the smallest slot (seen by all)."""
        position = torch.arange(length, device=device)
        per_item = 1 if self.config.pool_history_codes else self.num_levels
        slot = -1 - (length - 1 - position).div(per_item, rounding_mode="floor")
        if self.config.user_tokens > 0:
            slot[0] = torch.iinfo(torch.long).min
        return slot

    def _block_causal(self, length: int, device) -> torch.Tensor:
        """(S, S) query-sees-key: keys of the same or an earlier item."""
        slot = self._item_slots(length, device)
        return slot[None, :] <= slot[:, None]

    # ---- decoder ------------------------------------------------------------------------
    def decode(self, tokens: torch.Tensor, memory, memory_bias: torch.Tensor, start: int = 0, caches=None):
        """Decoder states (N, T, d) of `tokens` (N, T) at positions start.. ; N = users x G.
        Returns (states, new caches)."""
        length = tokens.shape[1]
        bias = self.decoder_positions(length, start + length, query_start=start)
        if caches is None and length > 1:
            causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()
            bias = bias + additive_mask(causal, torch.float32)
        x = self.input_dropout(self.token_embedding(tokens))
        new_caches = []
        for i, block in enumerate(self.decoder):
            x, kv = block(x, bias, memory[i], memory_bias, None if caches is None else caches[i])
            new_caches.append(kv)
        return self.input_dropout(self.decoder_norm(x)), new_caches

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """Logits over the whole vocabulary (output layer = the token embedding, as in T5)."""
        return F.linear(states * self.config.d_model ** -0.5, self.token_embedding.weight)

    def _teacher_inputs(self, codes: torch.Tensor) -> torch.Tensor:
        """(..., L) target codes -> decoder inputs BOS, c_0, ..., c_{L-2} as tokens."""
        bos = torch.full_like(codes[..., :1], BOS)
        return torch.cat([bos, self.code_tokens(codes[..., :-1])], dim=-1)

    # ---- training -----------------------------------------------------------------------
    def training_batches(self, dataset: SequenceDataset, batch_size: int,
                         rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
        """Paper: every item of a user's training part after the first is a target, with the (at
        most max_history) items before it as history. Fast variant: windows of max_history + 1
        consecutive training items (consecutive windows share one item), all but the first
        item of a window being targets. Batches group similar lengths."""
        starts, ends = dataset.train_ranges()
        if self.config.causal_encoder:
            yield from self._window_batches(dataset, starts, ends, batch_size, rng)
            return
        counts = np.maximum(ends - starts - 1, 0)
        targets = flatten_ranges(starts + 1, ends)  # offsets of the target items
        users = np.repeat(np.arange(len(starts)), counts)
        hist_starts = np.maximum(np.repeat(starts, counts), targets - self.max_history)
        for rows in length_bucketed_batches(targets - hist_starts, batch_size, rng):
            history = pad_left(dataset.items, hist_starts[rows], targets[rows], self.max_history)
            yield {"history": torch.from_numpy(history), "users": torch.from_numpy(users[rows]),
                   "targets": torch.from_numpy(dataset.items[targets[rows]])}

    def _window_batches(self, dataset, starts, ends, batch_size, rng):
        """Windows [start + i * max_history, + max_history + 1) of each user's training items, so
        every item but the user's first is a target of exactly one window."""
        step = self.max_history
        lengths = ends - starts
        per_user = np.where(lengths > 1, np.ceil((lengths - 1) / step), 0).astype(np.int64)
        users = np.repeat(np.arange(len(starts)), per_user)
        index = flatten_ranges(np.zeros_like(per_user), per_user)  # window number within its user
        win_starts = np.repeat(starts, per_user) + index * step
        win_ends = np.minimum(win_starts + step + 1, np.repeat(ends, per_user))
        for rows in length_bucketed_batches(win_ends - win_starts, batch_size, rng):
            window = pad_left(dataset.items, win_starts[rows], win_ends[rows], step + 1)
            yield {"window": torch.from_numpy(window), "users": torch.from_numpy(users[rows])}

    def batch_samples(self, batch: dict[str, torch.Tensor]) -> int:
        if "window" in batch:  # targets: window items with an item before them
            return int((batch["window"][:, :-1] > 0).sum())
        return len(batch["targets"])

    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if "window" in batch:
            return self._window_loss(batch["window"], batch.get("users"))
        memory, visible = self.encode(self.encoder_tokens(batch["history"], batch.get("users")))
        codes = self.item_codes[batch["targets"]]  # (B, L)
        states, _ = self.decode(self._teacher_inputs(codes), memory, cross_attention_bias(visible))
        return F.cross_entropy(self.logits(states).flatten(0, 1), self.code_tokens(codes).flatten())

    def _window_loss(self, window: torch.Tensor, users: torch.Tensor | None) -> torch.Tensor:
        """Every next item of each window in one pass (needs the block-causal encoder)."""
        history, targets = window[:, :-1], window[:, 1:]  # (B, W-1): target j follows history[:, :j+1]
        batch, width = targets.shape
        tokens = self.encoder_tokens(history, users)
        memory, visible_key = self.encode(tokens)
        # Target j may see the user token and the items of history slots <= j.
        slot = self._item_slots(tokens.shape[1], tokens.device)  # -width .. -1 (user: min)
        sees = slot[None, :] <= (torch.arange(width, device=tokens.device) - width)[:, None]  # (W-1, S)
        visible = visible_key[:, None, :] & sees[None]  # (B, W-1, S)
        visible = visible.repeat_interleave(self.num_levels, dim=1)[:, None]  # (B, 1, (W-1)*L, S)
        codes = self.item_codes[targets]  # (B, W-1, L)
        inputs = self._teacher_inputs(codes).reshape(batch * width, self.num_levels)
        states, _ = self.decode(inputs, memory, additive_mask(visible, torch.float32))
        # A target counts when an item precedes it (the window's first item is history only).
        labels = self.code_tokens(codes).masked_fill((history == 0)[..., None], -100)
        return F.cross_entropy(self.logits(states).flatten(0, 1), labels.flatten(), ignore_index=-100)

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
        """(items (B, k), their scores (B, k), -inf where no item).

        With `beam_scoring: vocabulary` a step's log-probabilities are the softmax over the
        whole vocabulary with disallowed tokens then removed (not renormalised), as Hugging
        Face's constrained `generate` does, so an item's score is its log-probability under the
        model; with `renormalized` each step's softmax runs over the allowed codes only."""
        trie = self.trie.to(history.device)
        memory, visible = self.encode(self.encoder_tokens(history, users))
        cross_bias = cross_attention_bias(visible)
        batch = history.shape[0]
        beams = max(self.config.beam_size, k)
        device = history.device
        # One live row per user at the root (the BOS token); every level keeps the `beams`
        # best extensions, so the first level's decoder step runs on one row, not `beams`.
        width = 1
        scores = torch.zeros(batch, 1, device=device)
        prefix = torch.zeros(batch, dtype=torch.long, device=device)
        tokens = torch.full((batch, 1), BOS, dtype=torch.long, device=device)
        caches = None
        user_rows = torch.arange(batch, device=device)[:, None]
        for level in range(self.num_levels):
            if use_cache:
                states, caches = self.decode(tokens[:, -1:], memory, cross_bias, start=level, caches=caches)
            else:
                states, _ = self.decode(tokens, memory, cross_bias)
            logp = torch.log_softmax(self.logits(states[:, -1]).float(), dim=-1)
            begin = self.level_offsets[level]
            allowed, child = trie.step(level, prefix)
            logp = logp[:, begin:begin + allowed.shape[1]].masked_fill(~allowed, -torch.inf)
            if self.config.beam_scoring == "renormalized":
                logp = logp - logp.logsumexp(dim=-1, keepdim=True)
            size = logp.shape[1]
            total = (scores.reshape(-1, 1) + logp).reshape(batch, width * size)
            if total.shape[1] < beams:  # fewer candidates than beams: the rest are dead (-inf)
                total = F.pad(total, (0, beams - total.shape[1]), value=-torch.inf)
            scores, picked = total.topk(beams, dim=1)  # (B, beams)
            parent = (user_rows * width + (picked // size).clamp(max=width - 1)).reshape(-1)
            code = (picked % size).reshape(-1)
            prefix = child.reshape(-1, size)[parent, code].clamp(min=0)  # dead beams: any valid id
            tokens = torch.cat([tokens[parent], (code + begin)[:, None]], dim=1)
            if caches is not None:
                caches = [(kc[parent], vc[parent]) for kc, vc in caches]
            width = beams
        # After the last level `prefix` holds item indices; dead beams (score -inf) give 0.
        items = prefix.reshape(batch, beams)
        items = torch.where(torch.isfinite(scores), items, torch.zeros_like(items))
        return items[:, :k], scores[:, :k]

    @torch.no_grad()
    def code_log_probs(self, history: torch.Tensor, items: torch.Tensor,
                       users: torch.Tensor | None = None) -> torch.Tensor:
        """(B, G, L) per-level log-probabilities (softmax over the whole vocabulary) of G given
        items per user, by teacher forcing; their sum over L is the item's `vocabulary` beam
        score. -inf rows for item 0 (no item). For re-ranking and score analyses."""
        memory, visible = self.encode(self.encoder_tokens(history, users))
        codes = self.item_codes[items]  # (B, G, L)
        inputs = self._teacher_inputs(codes).reshape(-1, self.num_levels)
        states, _ = self.decode(inputs, memory, cross_attention_bias(visible))
        logp = torch.log_softmax(self.logits(states).float(), dim=-1)
        picked = logp.gather(-1, self.code_tokens(codes).reshape(-1, self.num_levels, 1))[..., 0]
        return picked.reshape(codes.shape).masked_fill((items == 0)[..., None], -torch.inf)

    # ---- Hugging Face export ------------------------------------------------------------
    def export_t5(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """(`transformers.T5Config` keyword arguments, state dict) of the same network, for
        `T5ForConditionalGeneration(T5Config(**kwargs)).load_state_dict(state)`. The
        bidirectional encoder only: T5 has no block-causal encoder."""
        if self.config.causal_encoder:
            raise ValueError("a causal-encoder TIGER has no T5 equivalent (T5's encoder is bidirectional)")
        if self.config.pool_history_codes:
            raise ValueError("a TIGER with pooled history codes has no T5 equivalent (T5 reads one token per position)")
        c = self.config
        kwargs = dict(vocab_size=self.vocab_size, d_model=c.d_model, d_kv=c.head_dim, d_ff=c.ffn_size,
                      num_layers=c.encoder_layers, num_decoder_layers=c.decoder_layers, num_heads=c.num_heads,
                      relative_attention_num_buckets=c.relative_buckets,
                      relative_attention_max_distance=c.relative_max_distance, dropout_rate=c.dropout,
                      layer_norm_epsilon=1e-6, feed_forward_proj=c.activation, tie_word_embeddings=True,
                      pad_token_id=PAD, decoder_start_token_id=BOS, eos_token_id=None)
        state = {"shared.weight": self.token_embedding.weight, "encoder.embed_tokens.weight": self.token_embedding.weight,
                 "decoder.embed_tokens.weight": self.token_embedding.weight, "lm_head.weight": self.token_embedding.weight,
                 "encoder.final_layer_norm.weight": self.encoder_norm.weight,
                 "decoder.final_layer_norm.weight": self.decoder_norm.weight,
                 "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": self.encoder_positions.table.weight,
                 "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": self.decoder_positions.table.weight}

        for stack, blocks in (("encoder", self.encoder), ("decoder", self.decoder)):
            for i, block in enumerate(blocks):
                for j, (name, norm, module) in enumerate(block.sublayers()):
                    prefix = f"{stack}.block.{i}.layer.{j}"
                    state[f"{prefix}.layer_norm.weight"] = norm.weight
                    for weight in ("q", "k", "v", "o") if isinstance(module, Attention) else ("wi", "wo"):
                        state[f"{prefix}.{name}.{weight}.weight"] = getattr(module, weight).weight
        return kwargs, {k: v.detach().clone() for k, v in state.items()}

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
        old = self.token_embedding
        new = nn.Embedding(self.vocab_size, old.embedding_dim).to(old.weight)
        nn.init.normal_(new.weight, std=1.0)
        shift = SPECIAL + self.config.user_tokens
        with torch.no_grad():
            new.weight[:shift] = old.weight[:shift]
            for begin_old, begin_new, size in zip(old_offsets, new_offsets, old_sizes):
                new.weight[begin_new:begin_new + size] = old.weight[begin_old:begin_old + size]
        self.token_embedding = new
