"""`genrec download NAME`: fetch a named public dataset into the data folder."""

from __future__ import annotations

import argparse
import sys

from ..data.download import DOWNLOADS, MIRROR_ENV, dataset_config_overrides, download_dataset


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "download", help="download a public dataset (see --list)",
        description="Downloads a named dataset into $GENREC_DATA_DIR/NAME (or --root/NAME), resuming "
                    "partial downloads; without network it prints which files to place where.")
    parser.add_argument("name", metavar="NAME", nargs="?", choices=DOWNLOADS.names(),
                        help=f"one of: {', '.join(DOWNLOADS.names())}")
    parser.add_argument("--list", action="store_true", help="list the datasets, their formats and URLs")
    parser.add_argument("--root", metavar="DIR", help="parent folder (default: $GENREC_DATA_DIR)")
    parser.add_argument("--mirror", metavar="URL",
                        help=f"fetch the same paths from this host instead (default: ${MIRROR_ENV})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def _print_table() -> None:
    rows = [(spec.name, spec.format, remote.url) for spec in map(DOWNLOADS.get, DOWNLOADS.names())
            for remote in spec.files]
    width = [max(len(r[i]) for r in rows + [("NAME", "FORMAT", "")]) for i in range(2)]
    print(f"{'NAME':<{width[0]}}  {'FORMAT':<{width[1]}}  URL")
    previous = None
    for name, fmt, url in rows:
        shown = (name, fmt) if name != previous else ("", "")
        print(f"{shown[0]:<{width[0]}}  {shown[1]:<{width[1]}}  {url}")
        previous = name


def run(args: argparse.Namespace) -> int:
    if args.list:
        _print_table()
        return 0
    if args.name is None:
        print("genrec download: error: give a dataset NAME, or --list", file=sys.stderr)
        return 2
    folder = download_dataset(args.name, root=args.root, base_url=args.mirror, progress=not args.no_progress)
    overrides = dataset_config_overrides(args.name)
    print(f"{args.name} is in {folder}")
    print(f"read it with data: {{name: {args.name}, format: {overrides['format']}, "
          f"options: {overrides['options']}}}" + (f" and data.path: {folder}" if args.root else ""))
    return 0
