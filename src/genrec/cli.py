"""The `genrec` command line: one sub-command per module in genrec.commands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .data.errors import DataError

COMMAND_MODULES = ["run", "prepare", "train", "evaluate", "recommend", "demo", "download", "embed", "tokenize"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genrec", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"genrec.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # it logs each CPU build it probes
    try:
        return int(args.func(args) or 0)
    except (DataError, FileNotFoundError, KeyError, ValueError) as exc:
        # Bad input is the user's to fix: one clear line, no deep stack trace.
        if args.verbose:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"genrec {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
