"""Popularity and SASRec on the real datasets: test metrics, time per epoch, peak memory.

    GENREC_DATA_DIR=../shared/data python benchmarks/baselines.py --out results/baselines.json

Each (dataset, model) runs `genrec run configs/<dataset>/<model>.yaml` in its own process
(so peak memory is per run) under --runs-dir; a run whose metrics.json already exists is
reused, not re-run. Prints a markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["recall@5", "ndcg@5", "recall@10", "ndcg@10", "recall@20", "ndcg@20"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["beauty", "office", "scientific", "ml-100k"])
    parser.add_argument("--models", nargs="+", default=["popularity", "sasrec"])
    parser.add_argument("--runs-dir", default="runs/baselines")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="passed to genrec run")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()

    results = []
    for dataset in args.datasets:
        for model in args.models:
            run_dir = Path(args.runs_dir) / dataset / model
            if not (run_dir / "metrics.json").is_file():
                command = [sys.executable, "-m", "genrec.cli", "run", str(ROOT / "configs" / dataset / f"{model}.yaml"),
                           "--out", str(run_dir)] + [f"--set={o}" for o in args.overrides]
                print("$", " ".join(command), flush=True)
                subprocess.run(command, check=True)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            summary = json.loads((run_dir / "summary.json").read_text())
            results.append({"dataset": dataset, "model": model, "test": metrics["test"], "valid": metrics["valid"],
                            "best_epoch": summary.get("best_epoch"), "epochs_run": summary.get("epochs_run"),
                            "mean_epoch_seconds": summary.get("mean_epoch_seconds"),
                            "train_seconds": summary.get("train_seconds"),
                            "peak_memory_mb": summary.get("peak_memory_mb"),
                            "machine": summary.get("machine")})  # each run's own: cached runs may come from elsewhere

    header = "| dataset | model | " + " | ".join(COLUMNS) + " | epochs (best) | s/epoch | peak MB |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for r in results:
        cells = " | ".join(f"{r['test'][c]:.4f}" for c in COLUMNS)
        epochs = f"{r['epochs_run']} ({r['best_epoch']})" if r["epochs_run"] else "-"
        seconds = f"{r['mean_epoch_seconds']:.1f}" if r["mean_epoch_seconds"] else "-"
        print(f"| {r['dataset']} | {r['model']} | {cells} | {epochs} | {seconds} | {r['peak_memory_mb']:.0f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
