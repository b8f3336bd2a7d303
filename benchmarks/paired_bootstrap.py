"""Is a difference between trained runs real? A paired bootstrap over the split's users.

    python benchmarks/paired_bootstrap.py --run-dirs runs/A runs/B [runs/C ...] \\
        --reference 0.0384 --out FILE.json

Each run's per-user target ranks are decoded once on --split (at the depth its own evaluation
used, so the means reproduce its metrics.json); users are then resampled with replacement
--resamples times, the same resample for every run. Reports each run's --metric with the
bootstrap standard deviation and 95% interval, and each later run's difference from the first
with its own interval and the share of resamples in which it is positive. This measures the
noise of sampling the test users, not of the training seed. With --reference (say, a paper's
number) it also reports how many of those user-sampling standard deviations each run is below it.
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
from genrec.training.trainer import BEST  # noqa: E402


def parse_metric(metric: str) -> tuple[str, int]:
    """("recall" or "ndcg", K) of "recall@K" / "ndcg@K"; ValueError otherwise."""
    name, _, k = metric.partition("@")
    if name not in ("recall", "ndcg") or not k.isdigit() or int(k) < 1:
        raise ValueError(f"--metric {metric!r}: expected recall@K or ndcg@K with K >= 1")
    return name, int(k)


def bootstrap(ranks: list[torch.Tensor], metric: str, k: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, runs) of the metric's mean over users drawn with replacement, paired across runs."""
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
    try:
        name, k = parse_metric(args.metric)
    except ValueError as exc:
        parser.error(str(exc))
    metric = f"{name}@{k}"
    missing = [d for d in args.run_dirs if not (Path(d) / BEST).is_file()]
    if missing:
        parser.error(f"not a finished `genrec run` folder (no {BEST}): {', '.join(missing)}")
    torch.set_num_threads(args.threads)
    runs = [load_run(d, device="cpu") for d in args.run_dirs]  # every check before the minutes of decoding
    depths = [max(run.config.eval.ks) for run in runs]  # as deep as each run's own evaluation decoded
    for run_dir, run, depth in zip(args.run_dirs, runs, depths):
        if run.dataset.fingerprint != runs[0].dataset.fingerprint:
            parser.error(f"{run_dir} holds another dataset than {args.run_dirs[0]}; pairing needs the same users")
        # A ranked model's target below its decode depth is a miss, whatever K asks for.
        if run.model.output == "ranked" and k > depth:
            parser.error(f"{run_dir} decodes its top {depth} items (eval.ks); {metric} needs {k}")
    ranks = []
    for run, depth in zip(runs, depths):
        rows, run_ranks, _ = run.evaluator.user_ranks(run.model, args.split, depth, run.device, progress=False)
        ranks.append(run_ranks[np.argsort(rows)])  # rows in split order, whatever each run's batching
    means = bootstrap(ranks, metric, k, args.resamples, args.seed)
    values = [metrics_from_ranks(r, (k,))[metric] for r in ranks]
    result = {"args": vars(args), "machine": describe_machine(runs[0].device),
              "users": len(ranks[0]), "runs": {}}
    print(f"{'run':40s} {metric:>8s} {'sd':>8s}  95% interval        diff vs first  95% interval        P(diff>0)")
    for j, run_dir in enumerate(args.run_dirs):
        user_sd = float(means[:, j].std())
        entry = {metric: round(values[j], 5), "sd": round(user_sd, 5), "interval": interval(means[:, j])}
        line = f"{run_dir:40s} {values[j]:8.4f} {entry['sd']:8.5f}  {entry['interval']!s:18s}"
        if j:
            diff = means[:, j] - means[:, 0]
            entry["diff_vs_first"] = round(values[j] - values[0], 5)
            entry["diff_sd"] = round(float(diff.std()), 5)
            entry["diff_interval"] = interval(diff)
            entry["share_diff_positive"] = round(float((diff > 0).mean()), 4)
            line += f" {entry['diff_vs_first']:+13.4f}  {entry['diff_interval']!s:18s} {entry['share_diff_positive']:9.3f}"
        if args.reference is not None:
            # From the unrounded sd; None (as in seed_spread.py) when the resamples do not vary.
            entry["user_sds_below_reference"] = (round((args.reference - values[j]) / user_sd, 2)
                                                 if user_sd > 0 else None)
            entry["share_at_or_above_reference"] = round(float((means[:, j] >= args.reference).mean()), 4)
        result["runs"][run_dir] = entry
        print(line, flush=True)
    if args.reference is not None:
        distances = {d: e["user_sds_below_reference"] for d, e in result["runs"].items()}
        print(f"reference {args.reference}, in bootstrap sds of the {args.split} users (not of the training seed): "
              + ", ".join(f"{d} {'n/a' if x is None else x} below" for d, x in distances.items()))
    atomic_write_text(json.dumps(result, indent=1), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
