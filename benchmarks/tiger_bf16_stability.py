"""Which part of TIGER made bf16 training diverge on CUDA: the same short run, one part changed.

    python benchmarks/tiger_bf16_stability.py --variant bf16_attention --device cuda --out FILE.json \
        [--config configs/beauty/tiger-fast-pooled.yaml] [--set train.lr=0.002 ...]

Trains the config for the first few epochs of a 35-epoch schedule at lr 2e-3 under bf16
autocast (`train.stop_after_epoch`; validated once, at the last of them) and writes the training
loss by epoch and the skipped (non-finite) steps.
Variants, one change each:
  as_is                the model as shipped (attention products in fp32 inside the bf16 step)
  fp32                 no autocast at all
  bf16_attention       the attention in bf16, as before the fix (PyTorch picks the kernel)
  bf16_math_attention  the attention in bf16 on PyTorch's reference (math) kernel
  finite_mask          bf16 attention with masks at -1e9 (float32's minimum is -inf in bf16)
  fp32_logits          bf16 attention and the output layer (states x token embedding) in fp32
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
try:
    import genrec  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))

from genrec.device import describe_machine  # noqa: E402
from genrec.models import tiger  # noqa: E402
from genrec.pipeline import load_experiment, setup, train  # noqa: E402
from genrec.training.checkpoint import atomic_write_text  # noqa: E402

VARIANTS = ("as_is", "fp32", "bf16_attention", "bf16_math_attention", "finite_mask", "fp32_logits")


def bf16_attend(mask_floor: float | None = None):
    """Attention.attend as before the fix (the product in autocast's dtype); `mask_floor`
    raises the masks' most negative value to it first."""

    def attend(self, x, k, v, bias):
        q = self._split(self.q(x))
        mask = bias if mask_floor is None else bias.clamp(min=mask_floor)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype), scale=1.0,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.o(y.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))

    return attend


def logits_fp32(self, states):
    with torch.autocast(states.device.type, enabled=False):
        return F.linear(states.float() * self.config.d_model ** -0.5, self.token_embedding.weight)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--config", default=str(ROOT / "configs/beauty/tiger-fast-pooled.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override; default schedule: lr 2e-3 over 35 epochs, the first 6 run")
    parser.add_argument("--epochs-run", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--run-dir", help="run folder (default: beside --out)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    overrides = ["train.lr=0.002", "train.epochs=35", f"train.stop_after_epoch={args.epochs_run}",
                 "train.eval_every=1000", "train.patience=1000", "train.progress=false",
                 "train.tensorboard=false", "train.max_skipped_steps=1000000", f"device={args.device}",
                 f"threads={args.threads}", *args.overrides]
    cfg = load_experiment(args.config, overrides)
    cfg.train.precision = "fp32" if args.variant == "fp32" else "bf16"
    if args.variant in ("bf16_attention", "bf16_math_attention", "fp32_logits"):
        tiger.Attention.attend = bf16_attend()
    elif args.variant == "finite_mask":
        tiger.Attention.attend = bf16_attend(mask_floor=-1e9)
    if args.variant == "fp32_logits":
        tiger.TIGER.logits = logits_fp32
    kernel = contextlib.nullcontext()
    if args.variant == "bf16_math_attention":
        from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: PLC0415
        kernel = sdpa_kernel(SDPBackend.MATH)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    run = setup(cfg, args.run_dir or Path(args.out).with_suffix(""))
    start = time.perf_counter()
    with kernel:
        train(run)
    log = [json.loads(line) for line in (run.out_dir / "log.jsonl").read_text().splitlines()]
    result = {"variant": args.variant, "config": args.config, "overrides": overrides,
              "machine": describe_machine(run.device),
              "train_loss_by_epoch": {e: round(r["train_loss"], 4) for e, r in enumerate(log, 1)},
              "skipped_steps_by_epoch": {e: r["skipped_steps"] for e, r in enumerate(log, 1)},
              "valid_last_epoch": log[-1].get("valid"),
              "seconds": round(time.perf_counter() - start, 1)}
    print(json.dumps(result))
    atomic_write_text(json.dumps(result, indent=1), args.out)


if __name__ == "__main__":
    main()
