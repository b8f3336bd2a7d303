"""`genrec tokenize --dataset NAME --tokenizer T --out DIR`: embed (or reuse cached embeddings),
fit an item tokenizer, write codes + the fitted tokenizer + DIR/tokenizer_report.json."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..tokenizers import TOKENIZERS
from ..tokenizers.workflow import load_dataset, load_job, tokenize_dataset

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "tokenize", help="fit an item tokenizer (semantic IDs) on a dataset's item embeddings",
        description=__doc__)
    parser.add_argument("--dataset", help="named dataset (preset), e.g. beauty; or data.preset in --config")
    parser.add_argument("--tokenizer", choices=TOKENIZERS.names(),
                        help="tokenizer to fit (or tokenizer.name in --config)")
    parser.add_argument("--config", help="YAML with optional data / encoder / tokenizer sections")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value, e.g. --set steps=500 or --set encoder.pooling=cls (repeatable)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--device", help="device for the encoder and neural tokenizers (default auto)")
    parser.add_argument("--embeddings", help="use this .npy (n_items x dim) instead of encoding the item text")
    parser.add_argument("--knn", type=int, default=10, help="neighbours for neighbourhood preservation")
    parser.add_argument("--no-plot", action="store_true", help="skip code_usage.png")
    parser.set_defaults(func=run)


def run(args) -> int:
    job = load_job(args.config, args.overrides, dataset=args.dataset, tokenizer=args.tokenizer,
                   device=args.device)
    if not job.data:
        raise ValueError("no dataset given: use --dataset NAME or a data section in --config")
    dataset = load_dataset(job.data)
    embeddings = np.load(args.embeddings) if args.embeddings else None
    tok, report = tokenize_dataset(dataset, job.tokenizer_name, job.tokenizer, job.encoder, args.out,
                                   embeddings=embeddings, plot=not args.no_plot, knn=args.knn)
    out = Path(args.out)
    print(f"{tok.name} on {dataset.name}: {report['n_items']} items, levels {report['level_sizes']}, "
          f"unique IDs: {report['unique_ids']}, fit {report['fit_seconds']:.1f}s")
    print(f"wrote {out / 'codes.npy'}, {out / 'tokenizer_report.json'}; load with "
          f"genrec.tokenizers.load_tokenizer('{out}')")
    return 0 if report["unique_ids"] or job.tokenizer.dedup == "never" else 1
