"""What the benchmarks that read a finished TIGER run folder share: loading it (other models
refused), the result header, and the headline metrics of a full valid + test evaluation.

Imported by its sibling scripts (their folder is first on sys.path when they run).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    import genrec  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))

from genrec.device import describe_machine  # noqa: E402
from genrec.pipeline import Run, evaluate as evaluate_run, load_run  # noqa: E402

METRICS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")


def load_tiger_run(run_dir: str, device: str, purpose: str) -> Run:
    """The run's best weights, without progress bars; exits naming the model if it is not TIGER
    (`purpose` completes "this benchmark ...")."""
    run = load_run(run_dir, device=device)
    if run.config.model.name != "tiger":
        sys.exit(f"{run_dir} holds a {run.config.model.name} model; this benchmark {purpose}")
    run.config.train.progress = False
    return run


def result_header(run: Run, args) -> dict:
    return {"run_dir": args.run_dir, "args": vars(args), "machine": describe_machine(run.device)}


def headline_metrics(run: Run) -> dict:
    """{valid: {METRICS}, test: {METRICS}, seconds} of a full evaluation, rounded to 4 digits."""
    start = time.perf_counter()
    metrics = evaluate_run(run)
    row = {split: {m: round(metrics[split][m], 4) for m in METRICS} for split in ("valid", "test")}
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row
