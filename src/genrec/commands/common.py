"""Arguments shared by the commands that take an experiment config."""

from __future__ import annotations

import argparse


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML, e.g. configs/beauty/sasrec.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.lr=5e-4 (repeatable)")


def add_run_folder_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", help="run folder (default runs/<dataset>/<config file name>)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")


def print_recommendations(title: str, recommendations: list[dict]) -> None:
    print(title)
    for rec in recommendations:
        score = f"  ({rec['score']:.3f})" if rec.get("score") is not None else ""
        codes = f" <{'-'.join(map(str, rec['semantic_id']))}>" if rec.get("semantic_id") is not None else ""
        print(f"  {rec['rank']:>2}. [{rec['item_id']}]{codes} {rec['title'][:90]}{score}")
