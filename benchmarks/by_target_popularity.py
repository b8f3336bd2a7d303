"""NDCG@K of a trained run split by how often the target item occurs in training.

    python benchmarks/by_target_popularity.py --run-dir runs/beauty/tiger --out FILE.json

Explains gaps between splits (beauty's test targets are rarer than its validation targets)
and how much of a model's score comes from popular items. Bands are counts of the target in
the training part of all sequences; each band reports NDCG@K and its share of users. Ranked
(generative) models are asked for their top K, so a TIGER run decodes at its own beam size.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
try:
    import genrec  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))

from genrec.device import describe_machine  # noqa: E402
from genrec.evaluation.metrics import metrics_from_ranks  # noqa: E402
from genrec.pipeline import load_run  # noqa: E402
from genrec.training.checkpoint import atomic_write_text  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--bands", type=int, nargs="+", default=[5, 20, 100], help="band edges (counts)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = load_run(args.run_dir, device="cpu")
    dataset = run.dataset
    counts = dataset.train_item_counts()
    edges = [0, *args.bands, np.iinfo(np.int64).max]
    metric = f"ndcg@{args.k}"
    result = {"run_dir": args.run_dir, "k": args.k, "machine": describe_machine(run.device), "splits": {}}
    for split in ("valid", "test"):
        rows, ranks, _ = run.evaluator.user_ranks(run.model, split, args.k, run.device, progress=False)
        target_counts = torch.from_numpy(counts[dataset.eval_split(split).targets[rows]])
        bands = {}
        for low, high in zip(edges[:-1], edges[1:]):
            inside = (target_counts >= low) & (target_counts < high)
            name = f"{low}-{high - 1}" if high != edges[-1] else f">={low}"
            score = metrics_from_ranks(ranks[inside], (args.k,))[metric] if inside.any() else None
            bands[name] = {metric: None if score is None else round(score, 4),
                           "share_of_users": round(float(inside.double().mean()), 4)}
        result["splits"][split] = {metric: round(metrics_from_ranks(ranks, (args.k,))[metric], 4),
                                   "median_target_count": float(target_counts.double().median()), "bands": bands}
        print(split, json.dumps(result["splits"][split]), flush=True)
    atomic_write_text(json.dumps(result, indent=1), args.out)


if __name__ == "__main__":
    main()
