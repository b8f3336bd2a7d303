"""`genrec evaluate RUN_DIR`: full-ranking metrics of a trained run, written to metrics.json."""

from __future__ import annotations

import json

from ..pipeline import evaluate, format_metrics_table, load_run
from ..training.checkpoint import atomic_write_text


def register(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="evaluate a trained run folder")
    parser.add_argument("run_dir", help="folder written by genrec run / genrec train")
    parser.add_argument("--split", choices=["valid", "test", "both"], default="both")
    parser.add_argument("--device", help="override the run's device (cpu, cuda)")
    parser.set_defaults(func=run)


def run(args) -> int:
    run_ = load_run(args.run_dir, args.device)
    splits = ("valid", "test") if args.split == "both" else (args.split,)
    metrics = evaluate(run_, splits)
    for split in splits:
        print(format_metrics_table({run_.config.model.name: metrics}, split, run_.config.eval.ks))
    if args.split == "both":
        atomic_write_text(json.dumps(metrics, indent=2), run_.out_dir / "metrics.json")
    return 0
