"""Item text -> vectors (the `genrec embed` stage)."""

from .encoder import (
    DEFAULT_MODEL,
    TEXT_ENCODERS,
    EmbeddingResult,
    SentenceTransformerEncoder,
    TextEncoderConfig,
    build_encoder,
    bundled_model_path,
    cache_key,
    embed_dataset,
    embed_texts,
    embeddings_cache_dir,
    resolve_model,
)

__all__ = [
    "DEFAULT_MODEL", "TEXT_ENCODERS", "EmbeddingResult", "SentenceTransformerEncoder", "TextEncoderConfig",
    "build_encoder", "bundled_model_path", "cache_key", "embed_dataset", "embed_texts", "embeddings_cache_dir",
    "resolve_model",
]
