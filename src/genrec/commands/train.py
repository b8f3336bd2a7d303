"""`genrec train CONFIG --out DIR`: train with early stopping on the validation split."""

from __future__ import annotations

import json

from ..pipeline import load_experiment, setup, train
from .common import add_config_arguments, add_run_folder_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a model (no test evaluation)")
    add_config_arguments(parser)
    add_run_folder_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    run_ = setup(load_experiment(args.config, args.overrides), args.out)
    summary = train(run_, resume=args.resume)
    print(json.dumps(summary, indent=2))
    print(f"weights: {run_.out_dir / 'best.pt'}; evaluate with: genrec evaluate {run_.out_dir}")
    return 0
