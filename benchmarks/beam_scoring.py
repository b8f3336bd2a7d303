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

import torch
from tiger_runs import METRICS, headline_metrics, load_tiger_run, result_header

from genrec.models.tiger import BEAM_SCORINGS
from genrec.training.checkpoint import atomic_write_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, help="a finished `genrec run` folder of a TIGER model")
    parser.add_argument("--scorings", nargs="+", choices=BEAM_SCORINGS, default=list(BEAM_SCORINGS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = load_tiger_run(args.run_dir, args.device, "compares TIGER beam scorings")
    result = {**result_header(run, args), "beam_size": run.model.config.beam_size, "scorings": {}}
    print(f"{'scoring':>13}  " + "  ".join(f"{split[0]} {m:>9}" for split in ("valid", "test") for m in METRICS))
    for scoring in args.scorings:
        run.model.config.beam_scoring = scoring
        row = result["scorings"][scoring] = headline_metrics(run)
        print(f"{scoring:>13}  " + "  ".join(f"  {row[split][m]:9.4f}"
                                             for split in ("valid", "test") for m in METRICS), flush=True)
    atomic_write_text(json.dumps(result, indent=1), args.out)


if __name__ == "__main__":
    main()
