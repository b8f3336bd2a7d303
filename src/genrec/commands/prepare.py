"""`genrec prepare CONFIG`: load and preprocess the data (cached), print what was done."""

from __future__ import annotations

from ..data import prepare_dataset
from ..pipeline import load_experiment
from .common import add_config_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser("prepare", help="load + preprocess a dataset and cache it")
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    cfg = load_experiment(args.config, args.overrides)
    dataset = prepare_dataset(cfg.data)
    print(f"dataset {dataset.name} (cache key {dataset.fingerprint})")
    for line in dataset.log:
        print(f"  - {line}")
    print(f"  {dataset.stats()}")
    return 0
