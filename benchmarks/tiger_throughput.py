"""TIGER training throughput (targets/s) of the paper's and the fast formulation, and decoding speed.

    GENREC_DATA_DIR=../shared/data python benchmarks/tiger_throughput.py --dataset beauty \
        --threads 2 --out benchmarks/results/tiger_throughput_cpu.json

For each formulation (configs/<dataset>/tiger.yaml and tiger-fast.yaml: same network and codes,
bidirectional vs block-causal encoder) it times `--steps` steps of the config's optimizer
(tiger.yaml: Adafactor since 2026-12-02, AdamW before; tiger-fast.yaml: AdamW, fused and with
cheaper CPU dropout masks since 2026-12-02: benchmarks/train_step_variants.py) after
`--warmup` steps, counts the next-item targets they trained, and extrapolates one epoch (every
training target once). It then times trie-constrained beam search (beam 20, top 20) on test users. The same
command on a GPU machine (`--device cuda`) gives the GPU figures.
"""

from __future__ import annotations

import argparse
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
from genrec.data.batching import pad_left  # noqa: E402
from genrec.device import describe_machine, resolve_device, synchronize  # noqa: E402
from genrec.pipeline import build_experiment_model, load_experiment  # noqa: E402
from genrec.training.checkpoint import atomic_write_text  # noqa: E402
from genrec.training.trainer import TrainConfig, autocast, build_optimizer  # noqa: E402


def time_training(model, dataset, train_cfg: TrainConfig, steps: int, warmup: int, device) -> dict:
    model.train()
    optimizer = build_optimizer(model.parameters(), train_cfg)
    batches = model.training_batches(dataset, train_cfg.batch_size, np.random.default_rng(0))
    all_batches = list(batches)
    total_targets = sum(model.batch_samples(b) for b in all_batches)
    # Shuffled passes over the epoch's batches, as many as warm-up + steps need (a GPU runs
    # more steps than a large batch's epoch holds).
    rng = np.random.default_rng(1)
    passes = -(-(warmup + steps) // len(all_batches))
    order = np.concatenate([rng.permutation(len(all_batches)) for _ in range(passes)])[: warmup + steps]
    done, start = 0, None
    for i, index in enumerate(order):
        if i == warmup:
            synchronize(device)
            start = time.perf_counter()
        batch = {k: v.to(device) for k, v in all_batches[index].items()}
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, train_cfg.precision):
            loss = model.calculate_loss(batch)
        loss.backward()
        optimizer.step()
        if i >= warmup:
            done += model.batch_samples(all_batches[index])
    synchronize(device)
    seconds = time.perf_counter() - start
    per_s = done / seconds
    return {"targets_per_s": round(per_s, 1), "steps_per_s": round(steps / seconds, 2),
            "batches_per_epoch": len(all_batches), "targets_per_epoch": total_targets,
            "epoch_seconds_estimate": round(total_targets / per_s, 1)}


def time_decoding(model, dataset, users: int, batch_size: int, device) -> dict:
    model.eval()
    split = dataset.eval_split("test")
    rows = np.arange(min(users, len(split.users)))
    start = time.perf_counter()
    for begin in range(0, len(rows), batch_size):
        r = rows[begin:begin + batch_size]
        history = torch.from_numpy(pad_left(dataset.items, split.starts[r], split.ends[r], model.max_history))
        model.recommend({"history": history.to(device), "users": torch.from_numpy(split.users[r]).to(device)}, 20)
    synchronize(device)
    return {"users": len(rows), "users_per_s": round(len(rows) / (time.perf_counter() - start), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--configs", nargs="+", default=["tiger", "tiger-fast"],
                        help="config names under configs/<dataset>/")
    parser.add_argument("--steps", type=int, help="timed steps (default 20 on a CPU, 300 on a GPU)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 3 on a CPU, 60 on a GPU)")
    parser.add_argument("--decode-users", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides for both formulations")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    on_gpu = device.type == "cuda"
    steps = args.steps if args.steps is not None else (300 if on_gpu else 20)
    warmup = args.warmup if args.warmup is not None else (60 if on_gpu else 3)
    result = {"dataset": args.dataset, "machine": describe_machine(device), "steps": steps, "warmup": warmup,
              "overrides": args.set}
    for name in args.configs:
        cfg = load_experiment(ROOT / "configs" / args.dataset / f"{name}.yaml", args.set)
        dataset = prepare_dataset(cfg.data)
        # The experiment's own model: a behaviour config gets its behaviour-aware codes (its
        # ID-model stage is trained first when not cached), not text codes.
        torch.manual_seed(0)
        model, _ = build_experiment_model(cfg, dataset)
        model = model.to(device)
        entry = {"batch_size": cfg.train.batch_size, "precision": cfg.train.precision,
                 "optimizer": cfg.train.optimizer}
        entry.update(time_training(model, dataset, cfg.train, steps, warmup, device))
        entry["decode"] = time_decoding(model, dataset, args.decode_users, cfg.eval.batch_size, device)
        result[name] = entry
        print(f"{name:18s} batch {entry['batch_size']:4d} {entry['precision']} {entry['optimizer']}  {entry['targets_per_s']:9.1f} targets/s  "
              f"epoch ~{entry['epoch_seconds_estimate']:8.1f} s  decode {entry['decode']['users_per_s']:8.1f} users/s",
              flush=True)
    if "tiger" in result and "tiger-fast" in result:
        result["fast_speedup"] = round(result["tiger-fast"]["targets_per_s"] / result["tiger"]["targets_per_s"], 2)
        print(f"fast formulation: {result['fast_speedup']}x the paper formulation's targets/s")
    if args.out:
        atomic_write_text(json.dumps(result, indent=2), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
