"""`genrec embed --dataset NAME`: encode every item's text into a vector, cached on disk.

A second run with the same model, pooling, normalisation, template and item texts reuses the
cache instead of encoding again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import deep_merge, from_dict, load_yaml_layers, parse_overrides
from ..text import TextEncoderConfig, embed_dataset
from ..tokenizers.workflow import load_dataset


def register(subparsers) -> None:
    parser = subparsers.add_parser("embed", help="encode item text into vectors (cached)", description=__doc__)
    parser.add_argument("--dataset", help="named dataset (preset), e.g. beauty; or data.preset in --config")
    parser.add_argument("--config", help="YAML with optional data / encoder sections")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an encoder value, e.g. --set pooling=cls or --set encoder.batch_size=128")
    parser.add_argument("--model", help="sentence-transformers / Hugging Face model name or local path")
    parser.add_argument("--pooling", choices=["mean", "cls"])
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda if available, else cpu)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--no-cache", action="store_true", help="encode even if cached, and do not write the cache")
    parser.add_argument("--out", help="also write the embeddings to this .npy file")
    parser.set_defaults(func=run)


def run(args) -> int:
    raw = load_yaml_layers(args.config) if args.config else {}
    overrides = parse_overrides(args.overrides)
    data = deep_merge(dict(raw.get("data") or {}), dict(overrides.pop("data", {}) or {}))
    encoder = deep_merge(dict(raw.get("encoder") or {}), dict(overrides.pop("encoder", {}) or {}))
    encoder = deep_merge(encoder, overrides)  # bare keys are encoder keys
    for key, value in (("model", args.model), ("pooling", args.pooling), ("device", args.device),
                       ("batch_size", args.batch_size)):
        if value is not None:
            encoder[key] = value
    if args.dataset:
        data = {k: v for k, v in data.items() if k not in ("preset", "name")} | {"preset": args.dataset}
    if not data:
        raise ValueError("no dataset given: use --dataset NAME or a data section in --config")
    cfg = from_dict(TextEncoderConfig, encoder, "encoder")
    dataset = load_dataset(data)
    result = embed_dataset(dataset, cfg, use_cache=not args.no_cache)
    status = "cache hit" if result.cache_hit else f"encoded in {result.seconds:.1f}s"
    print(f"{dataset.name}: {result.embeddings.shape[0]} items x {result.embeddings.shape[1]} dims ({status})")
    if result.missing:
        print(f"  {len(result.missing)} item(s) had no text (policy missing_text={cfg.missing_text})")
    if result.cache_path:
        print(f"  cache: {result.cache_path}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, result.embeddings)
        print(f"  wrote {out}")
    return 0
