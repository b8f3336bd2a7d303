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
import platform
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
try:
    import genrec  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))

from genrec.data.batching import pad_left  # noqa: E402
from genrec.pipeline import load_run  # noqa: E402


def top_k(model, history: torch.Tensor, k: int) -> np.ndarray:
    batch = {"history": history}
    if model.output == "ranked":
        return model.recommend(batch, k).numpy()
    scores = model.full_sort_predict(batch).float()
    scores[:, 0] = -torch.inf
    return scores.topk(k, dim=1).indices.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--bands", type=int, nargs="+", default=[5, 20, 100], help="band edges (counts)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = load_run(args.run_dir, device="cpu")
    dataset, model = run.dataset, run.model
    starts, ends = dataset.train_ranges()
    counts = np.bincount(np.concatenate([dataset.items[s:e] for s, e in zip(starts, ends)]),
                         minlength=dataset.num_items + 1)
    edges = [0, *args.bands, np.iinfo(np.int64).max]
    result = {"run_dir": args.run_dir, "k": args.k, "machine": platform.platform(), "splits": {}}
    with torch.no_grad():
        for split in ("valid", "test"):
            data = dataset.eval_split(split)
            gains = []
            for begin in range(0, len(data.users), args.batch_size):
                rows = np.arange(begin, min(begin + args.batch_size, len(data.users)))
                history = torch.from_numpy(pad_left(dataset.items, data.starts[rows], data.ends[rows],
                                                    model.max_history))
                hit = top_k(model, history, args.k) == data.targets[rows][:, None]
                rank = np.where(hit.any(axis=1), hit.argmax(axis=1), args.k)  # k = missed
                gains.append(np.where(rank < args.k, 1.0 / np.log2(rank + 2), 0.0))
            gain, target_counts = np.concatenate(gains), counts[data.targets]
            bands = {}
            for low, high in zip(edges[:-1], edges[1:]):
                inside = (target_counts >= low) & (target_counts < high)
                name = f"{low}-{high - 1}" if high != edges[-1] else f">={low}"
                bands[name] = {f"ndcg@{args.k}": round(float(gain[inside].mean()), 4) if inside.any() else None,
                               "share_of_users": round(float(inside.mean()), 4)}
            result["splits"][split] = {f"ndcg@{args.k}": round(float(gain.mean()), 4),
                                       "median_target_count": float(np.median(target_counts)), "bands": bands}
            print(split, json.dumps(result["splits"][split]), flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
