"""Transformer building blocks shared by the sequence models (pre-norm, fused attention)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def init_weights(module: nn.Module, std: float) -> None:
    """Normal(0, std) weights, zero biases, zero padding embedding (use with Module.apply)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()


def check_dropout(p: float, field: str = "dropout") -> None:
    """A dropout rate `Dropout` can apply: in [0, 1) and, as its masks round it to a multiple
    of 1/65536, not rounding to 1."""
    if not 0.0 <= p < 1.0 or round(p * 65536) == 65536:
        raise ValueError(f"{field} must be in [0, 1), got {p}")


class Dropout(nn.Module):
    """nn.Dropout with a cheaper mask on the CPU. There PyTorch draws one random number per
    element, serially (a fifth of a fast TIGER training step on 2 cores went to the masks), so
    the mask here compares 16-bit uniform lanes cut from 64-bit random words, four per word:
    about 2x faster, forward and backward, than a `rand_like` threshold. `p` is rounded to a
    multiple of 1/65536 (0.1 -> 0.100006) and the kept values are scaled by 1 / (1 - that)."""

    def __init__(self, p: float):
        super().__init__()
        check_dropout(p)
        dropped = round(p * 65536)  # of the 65536 values a lane takes
        self.p = p
        self.threshold = dropped - 32768  # int16 lanes below it are dropped
        self.scale = 65536 / (65536 - dropped)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, True)
        words = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(-(2**63), None)  # all 64 bits
        keep = words.view(torch.int16)[: x.numel()].view(x.shape) >= self.threshold
        # The scale multiplies in fp32 (a Python float): a bf16 mask would round it 0.16% low.
        return x * keep.to(x.dtype) * self.scale


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(batch, length, dim))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + Attn(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), Dropout(dropout), nn.Linear(ffn_dim, dim))
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), mask))
        return x + self.drop(self.ffn(self.norm2(x)))


def causal_padding_mask(padding: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, T) boolean mask: a position sees itself and earlier non-padding positions.

    Letting every position see itself keeps padding rows from being all-masked (NaN).
    """
    length = padding.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=padding.device).tril()
    allowed = causal & ~padding[:, None, :]
    allowed |= torch.eye(length, dtype=torch.bool, device=padding.device)
    return allowed[:, None]
