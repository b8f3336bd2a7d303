"""How far does a recipe's result move with the training seed? Mean and spread over finished runs.

    python benchmarks/seed_spread.py --run-dirs runs/seed42 runs/seed1 runs/seed2 \\
        --reference 0.0384 --out FILE.json

Reads each run folder's metrics.json, summary.json and config.yaml (nothing is decoded, so it
takes a second) and reports, per run and over the runs: the --split metrics, the best and last
epoch and the training minutes; then each metric's mean, sample standard deviation, min and
max. The runs are meant to differ only in `seed`: every config key that differs between them
is listed, so a stray override shows. With --reference (say, a paper's number for --metric)
it also reports how many seed standard deviations the mean is below it. This is the training
seed's noise; `paired_bootstrap.py` measures the test users' sampling noise instead.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import yaml

METRICS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")
RUN_FILES = ("config.yaml", "metrics.json", "summary.json")


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"train.lr": 0.001, ...} of a nested config."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differing_keys(configs: list[dict]) -> dict:
    """{key: [value in each run]} for the keys whose values are not all equal."""
    keys = sorted(set().union(*configs))
    return {k: [c.get(k) for c in configs] for k in keys if len({json.dumps(c.get(k)) for c in configs}) > 1}


def read_run(run_dir: Path, split: str) -> dict:
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{run_dir}: not a finished `genrec run` folder (missing {', '.join(missing)})")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if split not in metrics:
        raise KeyError(f"{run_dir}/metrics.json has no {split!r} split (has: {', '.join(metrics)})")
    summary = json.loads((run_dir / "summary.json").read_text())
    config = flatten(yaml.safe_load((run_dir / "config.yaml").read_text()))
    return {"config": config, "metrics": {m: metrics[split][m] for m in METRICS},
            "best_epoch": summary.get("best_epoch"), "epochs_run": summary.get("epochs_run"),
            "train_minutes": round(summary.get("train_seconds", float("nan")) / 60, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dirs", nargs="+", required=True, help="finished `genrec run` folders of one recipe")
    parser.add_argument("--split", default="test", choices=["valid", "test"])
    parser.add_argument("--metric", default="ndcg@10", choices=METRICS, help="the metric --reference is a value of")
    parser.add_argument("--reference", type=float, help="a published value of --metric to compare the mean with")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if len(args.run_dirs) < 2:
        parser.error("a spread needs at least two --run-dirs")
    try:
        runs = {d: read_run(Path(d), args.split) for d in args.run_dirs}
    except (FileNotFoundError, KeyError) as exc:
        parser.error(str(exc.args[0]))
    differing = differing_keys([r.pop("config") for r in runs.values()])
    values = {m: np.array([r["metrics"][m] for r in runs.values()]) for m in METRICS}
    spread = {m: {"mean": round(float(v.mean()), 5), "sd": round(float(v.std(ddof=1)), 5),
                  "min": round(float(v.min()), 5), "max": round(float(v.max()), 5)} for m, v in values.items()}
    result = {"args": vars(args), "machine": platform.platform(), "split": args.split, "runs": runs,
              "config_keys_that_differ": differing, "spread": spread}
    print(f"{'run':40s} " + " ".join(f"{m:>9s}" for m in METRICS) + "  best/run epochs  train min")
    for run_dir, run in runs.items():
        print(f"{run_dir:40s} " + " ".join(f"{run['metrics'][m]:9.4f}" for m in METRICS)
              + f"  {run['best_epoch']!s:>4}/{run['epochs_run']!s:<4}      {run['train_minutes']:9.1f}")
    for stat in ("mean", "sd", "min", "max"):
        print(f"{stat:>40s} " + " ".join(f"{spread[m][stat]:9.4f}" for m in METRICS))
    print("config keys that differ:", ", ".join(f"{k} {v}" for k, v in differing.items()) or "none")
    if args.reference is not None:
        sd = spread[args.metric]["sd"]
        result["seed_sds_below_reference"] = round((args.reference - spread[args.metric]["mean"]) / max(sd, 1e-12), 2)
        print(f"reference {args.metric} {args.reference}: the mean is {result['seed_sds_below_reference']} "
              f"seed sds below it ({len(runs)} runs)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
