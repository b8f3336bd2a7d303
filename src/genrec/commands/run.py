"""`genrec run CONFIG`: prepare data, train, evaluate on valid and test, write metrics.json."""

from __future__ import annotations

import json

from ..pipeline import format_metrics_table, load_experiment, run_experiment
from .common import add_config_arguments, add_run_folder_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run the whole pipeline for one experiment config")
    add_config_arguments(parser)
    add_run_folder_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    cfg = load_experiment(args.config, args.overrides)
    metrics = run_experiment(cfg, args.out, resume=args.resume)
    print(format_metrics_table({cfg.model.name: metrics}, "valid", cfg.eval.ks))
    print()
    print(format_metrics_table({cfg.model.name: metrics}, "test", cfg.eval.ks))
    print(json.dumps({"test": {k: round(v, 4) for k, v in metrics["test"].items()}}))
    return 0
