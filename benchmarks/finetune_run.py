"""Fine-tune a finished TIGER run's best weights for a few epochs and report what it changes.

    python benchmarks/finetune_run.py --run-dir DIR --encoder bidirectional --lr 1e-4 \
        --epochs 8 --batch-size 256 --out FILE.json

Asks whether a model trained with genrec's fast formulation (block-causal encoder, every
target of a window in one pass) gains from a short second phase in the paper's formulation
(bidirectional encoder, one sample per history prefix, every history of up to max_history
items); `--encoder causal` is the control (the same extra epochs without the switch).
Validation (full), test (full) before, after the switch without training, and after
fine-tuning (best epoch on the validation subset, as the trainer picks it). The run folder
is only read; the fine-tune's checkpoints go to --work-dir.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from tiger_runs import headline_metrics, load_tiger_run, result_header

from genrec.training import TrainConfig, Trainer
from genrec.training.checkpoint import atomic_write_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, help="a finished `genrec run` folder of a TIGER model")
    parser.add_argument("--encoder", choices=("bidirectional", "causal"), required=True)
    parser.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (cosine to 10%%)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=256, help="samples (bidirectional) or windows (causal)")
    parser.add_argument("--valid-users", type=int, default=5000, help="validation subset for picking the epoch")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work-dir", help="checkpoints of the fine-tune (default: a folder beside --out)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = load_tiger_run(args.run_dir, args.device, "fine-tunes TIGER runs")
    if run.device.type == "cuda":
        torch.set_float32_matmul_precision("high")
    result = result_header(run, args)

    def evaluate(stage: str) -> None:
        result[stage] = headline_metrics(run)  # valid and test, full
        print(f"{stage:>16}  " + "  ".join(f"{split} {k} {result[stage][split][k]:.4f}"
                                             for split in ("valid", "test") for k in ("recall@10", "ndcg@10")),
              flush=True)

    evaluate("trained")
    causal = args.encoder == "causal"
    if run.model.config.causal_encoder != causal:
        run.model.config.causal_encoder = causal
        evaluate("switched")
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_steps=50,
                         schedule="cosine", eval_every=1, valid_users=args.valid_users, valid_ks=[10],
                         patience=args.epochs, precision=args.precision, progress=False, tensorboard=False)
    work = Path(args.work_dir) if args.work_dir else Path(args.out).with_suffix("")
    trainer = Trainer(run.model, run.dataset, run.evaluator, config, work, run.device, run.config.seed)
    result["fit"] = trainer.fit()
    result["epochs"] = [{"epoch": h["epoch"], "train_loss": round(h["train_loss"], 4),
                         "epoch_seconds": h["epoch_seconds"], "valid_subset_ndcg@10": round(h["valid"]["ndcg@10"], 4)}
                        for h in trainer.history]
    evaluate("fine_tuned")
    atomic_write_text(json.dumps(result, indent=1), args.out)


if __name__ == "__main__":
    main()
