"""Dataset -> embeddings (cached) -> fitted tokenizer -> files + diagnostics, as `genrec tokenize` runs it.

Config mapping (YAML file and/or `--set` overrides), every section optional:

    data:      {preset: beauty, ...}     # DataConfig fields (preset = a named dataset)
    encoder:   {model: ..., pooling: mean, device: auto, ...}   # TextEncoderConfig
    tokenizer: {name: rqvae, steps: 2000, ...}                 # the tokenizer's own config
    tokenizers: {rqvae: {...}, pq: {...}}                      # per-tokenizer settings

Top-level keys that are not one of these sections go to the tokenizer, so `--set steps=500`
and `--set tokenizer.steps=500` mean the same.

Output folder: codes.npy (final codes, row r = item r + 1 of the dataset), semantic_codes.npy,
tokenizer.json + state.npz (the fitted tokenizer, `load_tokenizer(DIR)`), item_ids.json (row
order), tokenizer_report.json (diagnostics) and code_usage.png.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ConfigError, deep_merge, from_dict, load_yaml_layers, parse_overrides, to_dict
from ..text import TextEncoderConfig, embed_dataset
from .base import TOKENIZERS, Tokenizer, unit_rows
from .diagnostics import diagnose, format_table, plot_code_usage, write_report

log = logging.getLogger(__name__)

SECTIONS = ("data", "encoder", "tokenizer", "tokenizers")
REPORT_FILE = "tokenizer_report.json"


@dataclasses.dataclass
class TokenizeJob:
    data: dict
    encoder: TextEncoderConfig
    tokenizer_name: str
    tokenizer: Any  # the tokenizer's typed config


def split_sections(raw: dict) -> dict:
    """Routes top-level keys that are not data/encoder/tokenizer(s) sections to the tokenizer."""
    out: dict = {s: dict(raw.get(s) or {}) for s in SECTIONS}
    stray = {k: v for k, v in raw.items() if k not in SECTIONS}
    out["tokenizer"] = deep_merge(out["tokenizer"], stray)
    return out


def load_job(config_file: str | Path | None = None, overrides: list[str] | None = None, *,
             dataset: str | None = None, tokenizer: str | None = None,
             device: str | None = None) -> TokenizeJob:
    """Builds the typed job from an optional YAML file, `key=value` overrides and CLI flags.

    The tokenizer's settings are, in order: `tokenizers.<name>` of the file, the file's
    `tokenizer` section (unless it names another tokenizer than the one chosen on the command
    line), then the overrides.
    """
    file = split_sections(load_yaml_layers(config_file) if config_file else {})
    cli = split_sections(parse_overrides(overrides))
    file_tok = dict(file["tokenizer"])
    file_name = file_tok.pop("name", None)
    cli_tok = dict(cli["tokenizer"])
    name = tokenizer or cli_tok.pop("name", None) or file_name
    cli_tok.pop("name", None)
    if not name:
        raise ConfigError(f"no tokenizer given: use --tokenizer {{{','.join(TOKENIZERS.names())}}}")
    cls = TOKENIZERS.get(name)
    if file_name and file_name != name:
        log.warning("config file's tokenizer section is for '%s'; fitting '%s' without it", file_name, name)
        file_tok = {}
    per_name = dict((file["tokenizers"].get(name) or {}))
    per_name = deep_merge(per_name, dict(cli["tokenizers"].get(name) or {}))
    tok_raw = deep_merge(deep_merge(per_name, file_tok), cli_tok)
    data = deep_merge(file["data"], cli["data"])
    if dataset:
        data = {k: v for k, v in data.items() if k not in ("preset", "name")} | {"preset": dataset}
    enc_raw = deep_merge(file["encoder"], cli["encoder"])
    if device:
        enc_raw["device"] = device
        if "device" in {f.name for f in dataclasses.fields(cls.Config)}:
            tok_raw["device"] = device
    encoder_cfg = from_dict(TextEncoderConfig, enc_raw, "encoder")
    tokenizer_cfg = from_dict(cls.Config, tok_raw, "tokenizer")
    return TokenizeJob(data=data, encoder=encoder_cfg, tokenizer_name=name, tokenizer=tokenizer_cfg)


def load_dataset(data: dict):
    """The SequenceDataset described by a `data` section ({preset: NAME, ...field overrides})."""
    from ..data import DataConfig, prepare_dataset  # noqa: PLC0415
    from ..data.presets import preset_fields  # noqa: PLC0415

    data = dict(data)
    if "preset" in data:
        data = deep_merge(preset_fields(data.pop("preset")), data)
    return prepare_dataset(from_dict(DataConfig, data, "data"))


def tokenize_dataset(dataset, tokenizer_name: str, tokenizer_config: Any = None,
                     encoder_config: TextEncoderConfig | None = None, out_dir: str | Path | None = None, *,
                     embeddings: np.ndarray | None = None, encoder=None, plot: bool = True,
                     knn: int = 10, print_table: bool = True) -> tuple[Tokenizer, dict]:
    """Embeds (or reuses cached embeddings), fits, writes the folder and returns (tokenizer, report)."""
    encoder_config = encoder_config or TextEncoderConfig()
    embedding_info: dict[str, Any]
    if embeddings is None:
        result = embed_dataset(dataset, encoder_config, encoder=encoder)
        embeddings = result.embeddings
        embedding_info = {"path": str(result.cache_path) if result.cache_path else None,
                          "cache_hit": result.cache_hit, "missing_text_items": len(result.missing),
                          "encoder": to_dict(encoder_config)}
    else:
        embedding_info = {"path": None, "cache_hit": None, "given": True}
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if len(embeddings) != dataset.num_items:
        raise ValueError(f"{len(embeddings)} embeddings for {dataset.num_items} items")
    embedding_info["dim"] = int(embeddings.shape[1])

    tok = TOKENIZERS.get(tokenizer_name)(tokenizer_config)
    tok.fit(embeddings)
    report = diagnose(tok, embeddings, knn=knn)
    report = {"dataset": dataset.name, "dataset_fingerprint": getattr(dataset, "fingerprint", ""),
              **report, "layout": tok.layout.to_dict(), "tokenizer_config": to_dict(tok.config),
              "embeddings": embedding_info, "fit_info": _brief_fit_info(tok.fit_info)}
    if out_dir is not None:
        out = Path(out_dir)
        tok.save(out)
        (out / "item_ids.json").write_text(json.dumps(list(dataset.item_ids[1:])))
        files = ["codes.npy", "semantic_codes.npy", "tokenizer.json", "state.npz", "item_ids.json", REPORT_FILE]
        if plot:
            plot_code_usage(tok, out / "code_usage.png", title=f"{dataset.name} / {tok.name}: code usage per level")
            files.append("code_usage.png")
        report["files"] = files
        write_report(report, out / REPORT_FILE)
    if print_table:
        print(format_table([report]))
    return tok, report


def _brief_fit_info(info: dict) -> dict:
    """fit_info without the long per-step history (the last record is kept)."""
    out = {k: v for k, v in info.items() if k != "history"}
    if info.get("history"):
        out["last_step"] = info["history"][-1]
    return out


# Config fields that change how a fit runs, not what it produces: left out of cache keys.
_RUNTIME_FIELDS = {"device", "cpu_threads", "log_every"}


def join_embeddings(text: np.ndarray, extra: np.ndarray, weight: float) -> np.ndarray:
    """Rows [text / |text|, weight * extra / |extra|]: both parts on a unit sphere, so `weight`
    alone sets the extra part's share of the distances a tokenizer clusters by. A zero row stays
    zero: a new item with no interactions yet is placed by its text alone (cold start)."""
    if len(text) != len(extra):
        raise ValueError(f"{len(text)} text embeddings but {len(extra)} extra vectors")
    return np.hstack([unit_rows(np.asarray(text, dtype=np.float32)),
                      np.float32(weight) * unit_rows(np.asarray(extra, dtype=np.float32))])


def cached_tokenizer(dataset, tokenizer_name: str, tokenizer_config: Any = None,
                     encoder_config: TextEncoderConfig | None = None, *, cache_dir: str | Path | None = None,
                     refit: bool = False, extra: np.ndarray | None = None, extra_key: str = "",
                     extra_weight: float = 1.0) -> Tokenizer:
    """The tokenizer fitted on `dataset`'s item embeddings, from the cache when it was fitted before.

    For models: `tok = cached_tokenizer(dataset, "rqvae", {...})`, then `tok.codes[item - 1]` is
    item `item`'s code and `tok.layout` the token vocabulary. The cache folder (a full
    `genrec tokenize` output folder) is keyed by the tokenizer name, its config and the
    embeddings' cache key (model, pooling, texts ...). `extra` (num_items x d, row r = item r + 1,
    named by `extra_key` in the cache key) joins the text embeddings via `join_embeddings`.
    """
    from ..config import config_hash  # noqa: PLC0415
    from ..data.config import cache_root  # noqa: PLC0415
    from .base import build_tokenizer, load_tokenizer  # noqa: PLC0415

    encoder_config = encoder_config or TextEncoderConfig()
    config = build_tokenizer(tokenizer_name, tokenizer_config).config
    embedded = embed_dataset(dataset, encoder_config)
    settings = {k: v for k, v in to_dict(config).items() if k not in _RUNTIME_FIELDS}
    parts = {"tokenizer": tokenizer_name, "config": settings, "embeddings": embedded.meta.get("key"),
             "n_items": dataset.num_items}
    if extra is not None:
        if not extra_key:
            raise ValueError("extra vectors need an extra_key naming them in the tokenizer cache key")
        parts["extra"] = {"key": extra_key, "weight": extra_weight}
    root = Path(cache_dir) if cache_dir is not None else cache_root() / "tokenizers"
    folder = root / f"{dataset.name}-{tokenizer_name}-{config_hash(parts)}"
    if (folder / "tokenizer.json").is_file() and not refit:
        log.info("tokenizer cache hit: %s", folder)
        return load_tokenizer(folder)
    embeddings = embedded.embeddings if extra is None else join_embeddings(embedded.embeddings, extra, extra_weight)
    tok, _ = tokenize_dataset(dataset, tokenizer_name, config, encoder_config, folder,
                              embeddings=embeddings, print_table=False)
    return tok
