"""How far does a recipe's result move with the training seed? Mean and spread over finished runs.

    python benchmarks/seed_spread.py --run-dirs runs/seed42 runs/seed1 runs/seed2 \\
        --reference 0.0384 --out FILE.json

Reads each run folder's metrics.json, summary.json and config.yaml (nothing is decoded, so it
takes a second) and reports, per run and over the runs: the --split metrics, the best and last
epoch and the training minutes; then each metric's mean, sample standard deviation, min and
max. The runs are meant to differ only in `seed`: every config key that differs between them
is listed, so a stray override shows, and so are the CPUs they trained on when those differ
(summary.json's `machine`: on a slower CPU the time limit cuts training sooner, and another
CPU's kernels may round differently, so the same seeds need not give the same run there).
With --reference (say, a paper's number for --metric) it also reports how many seed standard
deviations the mean is below it. This is the training seed's noise; `paired_bootstrap.py`
measures the test users' sampling noise instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml

# The headline metrics of tiger_runs.METRICS, repeated so that this script needs no torch.
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


def read_mapping(path: Path) -> dict:
    """A run file's top-level mapping; ValueError naming the file when it is not one."""
    try:
        data = yaml.safe_load(path.read_text()) if path.suffix == ".yaml" else json.loads(path.read_text())
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not valid {path.suffix[1:].upper()} ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top, found {type(data).__name__}")
    return data


def read_run(run_dir: Path, split: str, metrics: list[str]) -> dict:
    """The run's --split metrics, epochs and training minutes, and its flattened config."""
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing:
        raise ValueError(f"{run_dir}: not a finished `genrec run` folder (missing {', '.join(missing)})")
    scores = read_mapping(run_dir / "metrics.json").get(split)
    if not isinstance(scores, dict):
        raise ValueError(f"{run_dir}/metrics.json has no {split!r} split")
    absent = [m for m in metrics if not isinstance(scores.get(m), (int, float))]
    if absent:
        raise ValueError(f"{run_dir}/metrics.json: {split!r} lacks {', '.join(absent)}")
    summary = read_mapping(run_dir / "summary.json")
    config = flatten(read_mapping(run_dir / "config.yaml"))
    if config.get("behaviour.seed", 0) is None:  # null means "the experiment's seed": compare what ran
        config["behaviour.seed"] = config.get("seed")
    seconds = summary.get("train_seconds")
    machine = summary.get("machine")  # absent from runs made before summary.json recorded it
    return {"config": config, "metrics": {m: scores[m] for m in metrics},
            "cpu": machine.get("cpu") if isinstance(machine, dict) else None,
            # family/model/stepping: recorded since 2026-12-02; a VM's name may be just "AMD EPYC"
            "cpu_id": machine.get("cpu_id") if isinstance(machine, dict) else None,
            "best_epoch": summary.get("best_epoch"), "epochs_run": summary.get("epochs_run"),
            "train_minutes": round(seconds / 60, 1) if isinstance(seconds, (int, float)) else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dirs", nargs="+", required=True, help="finished `genrec run` folders of one recipe")
    parser.add_argument("--split", default="test", choices=["valid", "test"])
    parser.add_argument("--metric", default="ndcg@10", help="a metrics.json key (recall@K or ndcg@K) that "
                        "--reference is a value of; reported beside the four headline metrics")
    parser.add_argument("--reference", type=float, help="a published value of --metric to compare the mean with")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if len({Path(d).resolve() for d in args.run_dirs}) != len(args.run_dirs):
        parser.error("--run-dirs names a folder twice")
    if len(args.run_dirs) < 2:
        parser.error("a spread needs at least two --run-dirs")
    metrics = list(dict.fromkeys([*METRICS, args.metric]))
    try:
        runs = {d: read_run(Path(d), args.split, metrics) for d in args.run_dirs}
    except ValueError as exc:
        parser.error(str(exc))
    differing = differing_keys([r.pop("config") for r in runs.values()])
    values = {m: np.array([r["metrics"][m] for r in runs.values()], dtype=float) for m in metrics}
    spread = {m: {"mean": v.mean(), "sd": v.std(ddof=1), "min": v.min(), "max": v.max()} for m, v in values.items()}
    cpus = sorted({str(r["cpu"]) for r in runs.values()})
    cpu_ids = sorted({r["cpu_id"] for r in runs.values() if r["cpu_id"]})
    result = {"args": vars(args), "runs": runs, "config_keys_that_differ": differing, "cpus": cpus, "cpu_ids": cpu_ids,
              "spread": {m: {s: round(float(x), 5) for s, x in stats.items()} for m, stats in spread.items()}}
    print(f"{'run':40s} " + " ".join(f"{m:>9s}" for m in metrics) + "  best/run epochs  train min")
    for run_dir, run in runs.items():
        print(f"{run_dir:40s} " + " ".join(f"{run['metrics'][m]:9.4f}" for m in metrics)
              + f"  {run['best_epoch']!s:>4}/{run['epochs_run']!s:<4}      {run['train_minutes']!s:>9}")
    for stat in ("mean", "sd", "min", "max"):
        print(f"{stat:>40s} " + " ".join(f"{spread[m][stat]:9.4f}" for m in metrics))
    print("config keys that differ:", ", ".join(f"{k} {v}" for k, v in differing.items()) or "none")
    if len(cpus) > 1:
        print("trained on different CPUs ('None': not recorded):", "; ".join(cpus))
    if len(cpu_ids) > 1:
        print("trained on different CPU models (runs that recorded one):", "; ".join(cpu_ids))
    if args.reference is not None:
        sd = spread[args.metric]["sd"]
        below = float((args.reference - spread[args.metric]["mean"]) / sd) if sd > 0 else None
        result["seed_sds_below_reference"] = None if below is None else round(below, 2)
        print(f"reference {args.metric} {args.reference}: " + (
            f"the mean is {below:.2f} seed sds below it ({len(runs)} runs)" if below is not None
            else f"the runs' {args.metric} does not vary, so no distance in seed sds"))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
