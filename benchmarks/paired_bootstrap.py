"""Is a difference between trained runs real? A paired bootstrap over the split's users.

    python benchmarks/paired_bootstrap.py --run-dirs runs/A runs/B [runs/C ...] \\
        --reference 0.0384 --out FILE.json

Each run's per-user target ranks are decoded once on --split (at the depth its own evaluation
used, so the means reproduce its metrics.json); users are then resampled with replacement
--resamples times, the same resample for every run. Reports each run's --metric with the
bootstrap standard deviation and 95% interval, and each later run's difference from the first
with its own interval and the share of resamples in which it is positive. This measures the
noise of sampling the test users, not of the training seed. With --reference (say, a paper's
number) it also reports how many bootstrap standard deviations each run is below it.
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

from genrec.evaluation.metrics import metrics_from_ranks  # noqa: E402
from genrec.pipeline import load_run  # noqa: E402
from genrec.training.trainer import BEST  # noqa: E402


def run_ranks(run_dir: str, split: str) -> tuple[str, np.ndarray, torch.Tensor]:
    """(dataset fingerprint, evaluated rows, 0-based target ranks) of a run's best weights."""
    run = load_run(run_dir, device="cpu")
    depth = max(run.config.eval.ks)
    rows, ranks, _ = run.evaluator.user_ranks(run.model, split, depth, run.device, progress=False)
    return run.dataset.fingerprint, rows, ranks


def bootstrap(ranks: list[torch.Tensor], metric: str, resamples: int, seed: int) -> np.ndarray:
    """(resamples, runs) of the metric's mean over users drawn with replacement, paired across runs."""
    k = int(metric.split("@")[1])
    rng = np.random.default_rng(seed)
    users = len(ranks[0])
    out = np.empty((resamples, len(ranks)))
    for i in range(resamples):
        pick = torch.from_numpy(rng.integers(0, users, users))
        out[i] = [metrics_from_ranks(r[pick], (k,))[metric] for r in ranks]
    return out


def interval(values: np.ndarray) -> list[float]:
    return [round(float(v), 5) for v in np.percentile(values, [2.5, 97.5])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dirs", nargs="+", required=True, help="finished `genrec run` folders on one dataset; "
                        "differences are taken against the first")
    parser.add_argument("--split", default="test", choices=["valid", "test"])
    parser.add_argument("--metric", default="ndcg@10", help="recall@K or ndcg@K")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--reference", type=float, help="a published value of --metric to compare with")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.metric.split("@")[0] not in ("recall", "ndcg") or not args.metric.split("@")[-1].isdigit():
        parser.error(f"--metric {args.metric!r}: expected recall@K or ndcg@K")
    missing = [d for d in args.run_dirs if not (Path(d) / BEST).is_file()]
    if missing:
        parser.error(f"not a finished `genrec run` folder (no {BEST}): {', '.join(missing)}")
    torch.set_num_threads(args.threads)
    decoded = [run_ranks(d, args.split) for d in args.run_dirs]
    for run_dir, (fingerprint, rows, _) in zip(args.run_dirs[1:], decoded[1:]):
        if fingerprint != decoded[0][0] or not np.array_equal(rows, decoded[0][1]):
            parser.error(f"{run_dir} was evaluated on other data than {args.run_dirs[0]}; pairing needs the same users")
    ranks = [r for _, _, r in decoded]
    means = bootstrap(ranks, args.metric, args.resamples, args.seed)
    k = int(args.metric.split("@")[1])
    result = {"args": vars(args), "machine": platform.platform(), "torch": torch.__version__,
              "users": len(ranks[0]), "runs": {}}
    print(f"{'run':40s} {args.metric:>8s} {'sd':>8s}  95% interval        diff vs first  95% interval        P(diff>0)")
    for j, run_dir in enumerate(args.run_dirs):
        value = metrics_from_ranks(ranks[j], (k,))[args.metric]
        entry = {args.metric: round(value, 5), "sd": round(float(means[:, j].std()), 5), "interval": interval(means[:, j])}
        line = f"{run_dir:40s} {value:8.4f} {entry['sd']:8.5f}  {entry['interval']!s:18s}"
        if j:
            diff = means[:, j] - means[:, 0]
            entry["diff_vs_first"] = round(value - result["runs"][args.run_dirs[0]][args.metric], 5)
            entry["diff_sd"] = round(float(diff.std()), 5)
            entry["diff_interval"] = interval(diff)
            entry["share_diff_positive"] = round(float((diff > 0).mean()), 4)
            line += f" {entry['diff_vs_first']:+13.4f}  {entry['diff_interval']!s:18s} {entry['share_diff_positive']:9.3f}"
        if args.reference is not None:
            entry["sds_below_reference"] = round((args.reference - value) / max(entry["sd"], 1e-12), 2)
            entry["share_at_or_above_reference"] = round(float((means[:, j] >= args.reference).mean()), 4)
        result["runs"][run_dir] = entry
        print(line, flush=True)
    if args.reference is not None:
        print(f"reference {args.reference}: " + ", ".join(
            f"{d} {e['sds_below_reference']} sd below" for d, e in result["runs"].items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
