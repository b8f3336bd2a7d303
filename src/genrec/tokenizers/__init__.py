"""Item tokenizers: item embeddings -> unique semantic IDs, all behind one interface.

    from genrec.tokenizers import build_tokenizer
    tok = build_tokenizer("rqvae", overrides={"steps": 2000})
    codes = tok.fit(item_embeddings)          # (n_items x L) unique final codes
    tok.encode(new_embeddings)                # semantic codes of cold-start items
    tok.add_items(new_embeddings)             # ... with a free disambiguation digit
    tok.layout.offsets, tok.layout.vocab_size # flat token vocabulary
    tok.lookup(codes)                         # codes -> item rows
    tok.save(dir); load_tokenizer(dir)

Registered names: rqvae, cost, rqkmeans, pq, opq, hkmeans, random.
"""

from .base import (
    TOKENIZERS,
    CodeIndex,
    CollisionStats,
    Tokenizer,
    TokenizerConfig,
    VocabLayout,
    build_tokenizer,
    collision_stats,
    disambiguate,
    load_tokenizer,
)
from .hkmeans import HKMeansConfig, HKMeansTokenizer
from .pq import OPQConfig, OPQTokenizer, PQConfig, PQTokenizer
from .random_codes import RandomConfig, RandomTokenizer
from .rqkmeans import RQKMeansConfig, RQKMeansTokenizer
from .rqvae import CoSTConfig, CoSTTokenizer, RQVAEConfig, RQVAETokenizer

__all__ = [
    "TOKENIZERS", "CodeIndex", "CollisionStats", "Tokenizer", "TokenizerConfig", "VocabLayout",
    "build_tokenizer", "collision_stats", "disambiguate", "load_tokenizer",
    "HKMeansConfig", "HKMeansTokenizer", "OPQConfig", "OPQTokenizer", "PQConfig", "PQTokenizer",
    "RandomConfig", "RandomTokenizer", "RQKMeansConfig", "RQKMeansTokenizer",
    "CoSTConfig", "CoSTTokenizer", "RQVAEConfig", "RQVAETokenizer",
]
