"""A trained TIGER run evaluated under each beam-search scoring (`model.beam_scoring`).

    python benchmarks/beam_scoring.py --run-dir DIR --out FILE.json

Same weights, same beam; only how a step's log-probabilities are formed changes:
"vocabulary" (the softmax over the whole vocabulary, disallowed codes then removed) or
"renormalized" (the softmax over the codes the trie allows after the prefix). Full validation
and test, as `genrec evaluate` reports them. The run folder is only read.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
try:
    import genrec  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))

from genrec.models.tiger import BEAM_SCORINGS  # noqa: E402
from genrec.pipeline import evaluate as evaluate_run, load_run  # noqa: E402

METRICS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, help="a finished `genrec run` folder of a TIGER model")
    parser.add_argument("--scorings", nargs="+", choices=BEAM_SCORINGS, default=list(BEAM_SCORINGS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = load_run(args.run_dir, device=args.device)
    if run.config.model.name != "tiger":
        sys.exit(f"{args.run_dir} holds a {run.config.model.name} model; this benchmark compares TIGER beam scorings")
    run.config.train.progress = False
    result = {"run_dir": args.run_dir, "args": vars(args), "machine": platform.platform(),
              "device": torch.cuda.get_device_name(run.device) if run.device.type == "cuda" else "cpu",
              "torch": torch.__version__, "beam_size": run.model.config.beam_size, "scorings": {}}
    print(f"{'scoring':>13}  " + "  ".join(f"{split[0]} {m:>9}" for split in ("valid", "test") for m in METRICS))
    for scoring in args.scorings:
        run.model.config.beam_scoring = scoring
        start = time.perf_counter()
        metrics = evaluate_run(run)
        row = {split: {m: round(metrics[split][m], 4) for m in METRICS} for split in ("valid", "test")}
        row["seconds"] = round(time.perf_counter() - start, 1)
        result["scorings"][scoring] = row
        print(f"{scoring:>13}  " + "  ".join(f"  {row[split][m]:9.4f}"
                                             for split in ("valid", "test") for m in METRICS), flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
