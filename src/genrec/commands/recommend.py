"""`genrec recommend RUN_DIR --items ID ...`: top-k items, with titles, after a given history."""

from __future__ import annotations

import json

from ..pipeline import load_run, recommend
from .common import print_recommendations


def register(subparsers) -> None:
    parser = subparsers.add_parser("recommend", help="top-k items for a history of item ids")
    parser.add_argument("run_dir", help="folder written by genrec run / genrec train")
    parser.add_argument("--items", nargs="+", required=True, metavar="ITEM_ID",
                        help="the user's history, oldest first (raw item ids as in the dataset)")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--exclude-seen", action="store_true", help="never recommend items already in the history")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a list")
    parser.add_argument("--device", help="override the run's device (cpu, cuda)")
    parser.set_defaults(func=run)


def run(args) -> int:
    run_ = load_run(args.run_dir, args.device)
    recs = recommend(run_, args.items, args.k, exclude_seen=args.exclude_seen)
    if args.json:
        print(json.dumps(recs, indent=2))
        return 0
    index = run_.dataset.item_index()
    print("history:")
    for item in args.items:
        print(f"  - [{item}] {run_.dataset.item_titles[index[item]][:90]}")
    print_recommendations(f"top-{args.k} from {run_.config.model.name}:", recs)
    return 0
