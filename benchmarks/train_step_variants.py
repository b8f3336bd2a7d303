"""What genrec's CPU dropout mask and fused AdamW save per training step, measured interleaved.

    GENREC_DATA_DIR=../shared/data python benchmarks/train_step_variants.py \
        --config configs/beauty/tiger-fast-pooled.yaml --threads 2 --out FILE.json

A 2-core VM's speed drifts by 10-30% over minutes (other tenants), so timing one code version
after another measures the drift as much as the code. This script builds one copy of the
config's model (same weights) per variant and takes, in every round, one training step of
each variant on the same batch, in a random order. Batches differ in length (step times by
2x), so each variant's speed-up over the first variant (genrec before 2026-12-02) is taken per
round, on the same batch; the table shows its median and quartiles beside the median step time.
The variants cross the dropout mask (`rand_like`: a float uniform per element against p,
genrec's CPU dropout before 2026-12-02; `int16-lanes`: genrec's `Dropout` now) with the AdamW
implementation (`loop`: per parameter, PyTorch's CPU default; `fused`: what `build_optimizer`
now builds). The config's precision (autocast) applies to all.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
try:
    import genrec  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))

from genrec.data import prepare_dataset  # noqa: E402
from genrec.device import describe_machine  # noqa: E402
from genrec.models.layers import Dropout  # noqa: E402
from genrec.pipeline import build_experiment_model, load_experiment  # noqa: E402
from genrec.training.checkpoint import atomic_write_text  # noqa: E402
from genrec.training.trainer import autocast, build_optimizer  # noqa: E402

INT16_LANES = Dropout.forward


def rand_like_forward(self: Dropout, x: torch.Tensor) -> torch.Tensor:
    """The reference: genrec's CPU dropout before 2026-12-02."""
    if not self.training or self.p == 0.0:
        return x
    keep = torch.rand_like(x) >= self.p
    return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))


MASKS = {"rand_like": rand_like_forward, "int16-lanes": INT16_LANES}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="an experiment YAML, e.g. configs/beauty/sasrec.yaml")
    parser.add_argument("--rounds", type=int, default=40, help="timed rounds (one step of every variant each)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_experiment(args.config, args.set)
    if cfg.train.optimizer != "adamw":
        parser.error(f"{args.config} trains with {cfg.train.optimizer}; the optimizer variants are AdamW's")
    dataset = prepare_dataset(cfg.data)
    torch.manual_seed(0)
    model, _ = build_experiment_model(cfg, dataset)
    device = torch.device("cpu")
    variants = {}
    for mask in MASKS:
        for adamw in ("loop", "fused"):
            replica = copy.deepcopy(model).train()
            optimizer = build_optimizer(replica.parameters(), cfg.train)  # genrec's: fused
            if adamw == "loop":  # the same settings on PyTorch's per-parameter CPU default
                settings = {k: optimizer.defaults[k] for k in ("lr", "betas", "weight_decay")}
                optimizer = torch.optim.AdamW(replica.parameters(), **settings, foreach=False)
            variants[(mask, adamw)] = (replica, optimizer, [])
    variant_list = list(variants.items())
    batches = list(model.training_batches(dataset, cfg.train.batch_size, np.random.default_rng(0)))
    order = np.random.default_rng(1).permutation(len(batches))
    targets = []
    shuffle = np.random.default_rng(2)
    try:
        for round_ in range(args.warmup + args.rounds):
            batch = batches[order[round_ % len(order)]]
            # A new order of the variants each round: a fixed one would give each the same
            # predecessor, whose leftovers (allocator state, caches) it would always inherit.
            for index in shuffle.permutation(len(variants)):
                (mask, _), (replica, optimizer, times) = variant_list[index]
                Dropout.forward = MASKS[mask]
                start = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                with autocast(device, cfg.train.precision):
                    loss = replica.calculate_loss(batch)
                loss.backward()
                optimizer.step()
                if round_ >= args.warmup:
                    times.append(time.perf_counter() - start)
            if round_ >= args.warmup:
                targets.append(model.batch_samples(batch))
    finally:
        Dropout.forward = INT16_LANES
    mean_targets = float(np.mean(targets))
    result = {"config": str(args.config), "overrides": args.set, "precision": cfg.train.precision,
              "batch_size": cfg.train.batch_size, "rounds": args.rounds, "warmup": args.warmup,
              "machine": describe_machine(device), "variants": []}
    reference = np.array(next(iter(variants.values()))[2])
    print(f"{'dropout mask':>12s} {'AdamW':>6s} {'median step ms':>15s} {'targets/s':>10s} {'speed-up':>9s} "
          f"{'its quartiles':>14s}")
    for (mask, adamw), (_, _, times) in variants.items():
        # Batches differ in length (2x in step time), so the speed-up is taken per round, on the
        # same batch, against the first variant (genrec before 2026-12-02), then its median.
        ratios = reference / np.array(times)
        quartiles = np.percentile(ratios, [25, 75])
        median = float(np.median(times))
        row = {"dropout_mask": mask, "adamw": adamw, "median_step_ms": round(median * 1e3, 2),
               "targets_per_s": round(mean_targets / median, 1), "speedup": round(float(np.median(ratios)), 3),
               "speedup_quartiles": [round(float(q), 3) for q in quartiles]}
        result["variants"].append(row)
        print(f"{mask:>12s} {adamw:>6s} {row['median_step_ms']:15.2f} {row['targets_per_s']:10.1f} "
              f"{row['speedup']:9.3f} {quartiles[0]:6.3f}-{quartiles[1]:.3f}")
    if args.out:
        atomic_write_text(json.dumps(result, indent=2), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
