"""The tokenizer study: one generator (TIGER), several tokenizers, several datasets; a table + JSON.

    GENREC_DATA_DIR=../shared/data python benchmarks/tiger_study.py --datasets beauty office \
        --tokenizers rqvae cost rqkmeans random --config tiger-fast --parallel 8 \
        --set train.time_limit_minutes=4.5 --set train.eval_every=2 --set train.epochs=30 \
        --runs runs/study --out benchmarks/results/tiger_study.json

Each cell is `genrec run configs/<dataset>/<config>.yaml --set model.tokenizer=<tokenizer>`
(tokenizer defaults: rqvae 3 x 256, cost 3 x 64, rqkmeans 3 x 256, random 3 x 256, each + a
collision digit), into <runs>/<dataset>-<tokenizer>. `--parallel N` runs N cells at once
(useful on a GPU, where one small model leaves it mostly idle). `--collect` only reads the
finished run folders and prints the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["recall@5", "ndcg@5", "recall@10", "ndcg@10"]


def run_cell(dataset: str, tokenizer: str, args) -> int:
    out = args.runs / f"{dataset}-{tokenizer}"
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "genrec.cli", "run", str(ROOT / "configs" / dataset / f"{args.config}.yaml"),
           "--out", str(out), "--set", f"model.tokenizer={tokenizer}", "--set", "train.progress=false"]
    for override in args.set:
        cmd += ["--set", override]
    with open(out / "study.log", "w") as log:
        return subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)


def collect(args) -> dict:
    cells = {}
    for dataset in args.datasets:
        for tokenizer in args.tokenizers:
            folder = args.runs / f"{dataset}-{tokenizer}"
            if not (folder / "metrics.json").is_file():
                print(f"missing: {folder}/metrics.json", file=sys.stderr)
                continue
            metrics = json.loads((folder / "metrics.json").read_text())
            summary = json.loads((folder / "summary.json").read_text())
            cells[f"{dataset}/{tokenizer}"] = {
                "test": {k: metrics["test"][k] for k in COLUMNS + ["invalid_rate"]},
                "valid_ndcg@10": metrics["valid"]["ndcg@10"], "epochs_run": summary.get("epochs_run"),
                "best_epoch": summary.get("best_epoch"), "train_seconds": summary.get("train_seconds"),
                "machine": summary.get("machine")}
    return cells


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["beauty", "office"])
    parser.add_argument("--tokenizers", nargs="+", default=["rqvae", "cost", "rqkmeans", "random"])
    parser.add_argument("--config", default="tiger-fast", help="configs/<dataset>/<config>.yaml")
    parser.add_argument("--set", action="append", default=[], help="override for every cell (repeatable)")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--runs", type=Path, default=Path("runs/study"))
    parser.add_argument("--collect", action="store_true", help="only read finished runs")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not args.collect:
        cells = [(d, t) for d in args.datasets for t in args.tokenizers]
        with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
            codes = list(pool.map(lambda cell: run_cell(*cell, args), cells))
        for (d, t), code in zip(cells, codes):
            if code:
                print(f"{d}/{t} failed (exit {code}); see {args.runs}/{d}-{t}/study.log", file=sys.stderr)
    cells = collect(args)
    print(f"{'dataset/tokenizer':<20}" + "".join(f"{c:>11}" for c in COLUMNS) + f"{'epochs':>8}")
    for name, cell in cells.items():
        print(f"{name:<20}" + "".join(f"{cell['test'][c]:>11.4f}" for c in COLUMNS) + f"{cell['epochs_run']:>8}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"config": args.config, "overrides": args.set, "cells": cells}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
