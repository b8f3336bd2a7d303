"""Random codes, for ablations: every item gets codes drawn uniformly per level.

The draw is a keyed hash of the item's embedding bytes and the seed, so it needs no state,
`encode` reproduces the codes of fitted items and new items get codes too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from .base import TOKENIZERS, Tokenizer, TokenizerConfig


@dataclass
class RandomConfig(TokenizerConfig):
    codebook_sizes: list[int] = field(default_factory=lambda: [256, 256, 256])


@TOKENIZERS.register("random")
class RandomTokenizer(Tokenizer):
    name = "random"
    Config = RandomConfig

    def _fit(self, x):
        return self._encode(x)

    def _encode(self, x):
        sizes = np.asarray(self.config.codebook_sizes, dtype=np.uint64)
        key = int(self.config.seed).to_bytes(8, "little", signed=True)
        rows = np.ascontiguousarray(x, dtype=np.float32)
        out = np.empty((len(rows), len(sizes)), dtype=np.int64)
        n_words = len(sizes)
        for i, row in enumerate(rows):
            words = []
            block = 0
            while len(words) < n_words:  # 8 words per 64-byte digest
                digest = hashlib.blake2b(row.tobytes() + block.to_bytes(4, "little"), key=key,
                                         digest_size=64).digest()
                words.extend(np.frombuffer(digest, dtype="<u8").tolist())
                block += 1
            out[i] = (np.asarray(words[:n_words], dtype=np.uint64) % sizes).astype(np.int64)
        return out

    def semantic_level_sizes(self):
        return [int(s) for s in self.config.codebook_sizes], [None] * len(self.config.codebook_sizes)
