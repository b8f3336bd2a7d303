"""Does weighting the code levels differently rank a trained TIGER run's beam better?

    python benchmarks/level_weight_rerank.py --run-dir DIR --out FILE.json

Beam search scores an item by the sum of its L per-level log-probabilities. This probe asks
whether that sum is mis-calibrated between levels (say, an over-confident first code): it
decodes each user's top --depth items once (the run's beam search), takes each candidate's
per-level log-probabilities by teacher forcing, and re-ranks the candidates by
sum_l w_l * log p_l for a grid of weights w (w = 1 everywhere reproduces the run's ranking,
which the script checks). The weights are picked on the full validation split and then
applied to test. Re-ranking a fixed top --depth approximates decoding with those weights (the
beam would prune differently); it is exact for items within the depth.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
from tiger_runs import METRICS, load_tiger_run, result_header

from genrec.data.batching import pad_left
from genrec.evaluation.metrics import metrics_from_ranks
from genrec.training.checkpoint import atomic_write_text

KS = (5, 10)
TIE = 1e-4  # scores this close count as tied (teacher forcing and cached decoding differ by rounding)


@torch.no_grad()
def candidates_with_level_logp(run, split: str, depth: int, batch_size: int):
    """(per-level log-probabilities (U, depth, L), -inf rows for missing items; index of the
    target among the candidates (U,), -1 when not there)."""
    model, dataset = run.model, run.dataset
    data = dataset.eval_split(split)
    level_logp, target_at = [], []
    for begin in range(0, len(data.users), batch_size):
        rows = np.arange(begin, min(begin + batch_size, len(data.users)))
        history = torch.from_numpy(pad_left(dataset.items, data.starts[rows], data.ends[rows], model.max_history))
        users = torch.from_numpy(data.users[rows])
        items, _ = model.beam_search(history, depth, users)  # (B, depth), 0 = no item
        level_logp.append(model.code_log_probs(history, items, users))
        hit = items == torch.from_numpy(data.targets[rows])[:, None]
        target_at.append(torch.where(hit.any(1), hit.float().argmax(1), torch.full_like(hit[:, 0], -1, dtype=torch.long)))
    return torch.cat(level_logp), torch.cat(target_at)


def metrics_for(weights: torch.Tensor, level_logp: torch.Tensor, target_at: torch.Tensor) -> dict:
    score = (level_logp * weights).sum(-1)  # (U, depth); -inf for missing items stays -inf
    found = target_at >= 0
    target_score = score.gather(1, target_at.clamp(min=0)[:, None])
    earlier = torch.arange(score.shape[1])[None, :] < target_at[:, None]  # ties keep the beam's order
    ahead = (score > target_score + TIE) | ((score - target_score).abs() <= TIE) & earlier
    ranks = ahead.sum(1).float()
    ranks[~found] = torch.inf
    result = metrics_from_ranks(ranks, KS)
    return {m: round(float(result[m]), 5) for m in METRICS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, help="a finished `genrec run` folder of a TIGER model")
    parser.add_argument("--depth", type=int, help="candidates decoded per user (default: the run's largest eval cut-off, "
                        "as its evaluator decodes them)")
    parser.add_argument("--grid", type=float, nargs="+", default=[0.5, 0.75, 1.0, 1.25, 1.5],
                        help="values tried for each of the first three levels' weights (the last level keeps 1)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = load_tiger_run(args.run_dir, "cpu", "re-ranks TIGER beams")
    levels = run.model.num_levels
    args.depth = args.depth or max(run.config.eval.ks)
    result = result_header(run, args)
    logp, at = {}, {}
    for split in ("valid", "test"):
        start = time.perf_counter()
        logp[split], at[split] = candidates_with_level_logp(run, split, args.depth, args.batch_size)
        result[f"{split}_decode_seconds"] = round(time.perf_counter() - start, 1)
    grid = []
    for head in itertools.product(args.grid, repeat=min(3, levels - 1)):
        weights = torch.tensor([*head, *[1.0] * (levels - len(head))])
        grid.append({"weights": weights.tolist(), "valid": metrics_for(weights, logp["valid"], at["valid"])})
    uniform = next(g for g in grid if all(w == 1.0 for w in g["weights"]))
    best = max(grid, key=lambda g: g["valid"]["ndcg@10"])
    for row in (uniform, best):
        row["test"] = metrics_for(torch.tensor(row["weights"]), logp["test"], at["test"])
    metrics = json.loads((Path(args.run_dir) / "metrics.json").read_text())
    result["run_metrics"] = {split: {m: round(metrics[split][m], 5) for m in METRICS} for split in ("valid", "test")}
    result["uniform_reproduces_run"] = all(abs(uniform[s][m] - result["run_metrics"][s][m]) < 2e-5
                                          for s in ("valid", "test") for m in METRICS)
    result["uniform"], result["best_on_valid"] = uniform, best
    result["grid"] = sorted(grid, key=lambda g: -g["valid"]["ndcg@10"])
    print(f"{'':>13} {'weights':>22}  " + "  ".join(f"{s[0]} {m:>9}" for s in ("valid", "test") for m in METRICS))
    for name, row in (("uniform", uniform), ("best on valid", best)):
        print(f"{name:>13} {str(row['weights']):>22}  " + "  ".join(
            f"  {row[s][m]:9.4f}" for s in ("valid", "test") for m in METRICS))
    print("uniform weights reproduce the run's metrics.json:", result["uniform_reproduces_run"])
    atomic_write_text(json.dumps(result, indent=1), args.out)


if __name__ == "__main__":
    main()
