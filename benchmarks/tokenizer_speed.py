"""RQ-KMeans fit time and quantisation error: genrec against the `semantic-id` package, side by side.

    pip install semantic-id          # benchmark environment only; NOT a dependency of genrec
    GENREC_DATA_DIR=../shared/data python benchmarks/tokenizer_speed.py --dataset beauty --out speed.json

Both fit the same embeddings (the dataset's items encoded with the default encoder, from the
embeddings cache) with the same number of levels and codebook size, one after the other in
this process, each with its own default k-means settings. Quantisation error is the mean
squared error per dimension between the embeddings and their reconstruction from the codes
(sum of the chosen centroids). genrec's default adds 5 passes of joint codebook refinement
to the greedy level-by-level fit; the same fit without them is reported too
(genrec_no_refine_*). With --all-tokenizers it also times the fit of every genrec
tokenizer (default configs) on the same embeddings.

On a machine shared with other jobs, pin both libraries to the same number of threads for a
stable comparison, e.g. `OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/...`; the
thread settings and the load average are recorded in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
try:
    import genrec  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))

INSTALL_HINT = ("this benchmark compares against the PyPI package `semantic-id`, which is not a genrec "
                "dependency; install it in the benchmark environment: pip install semantic-id==0.2.5")


def load_embeddings(dataset_name: str) -> np.ndarray:
    from genrec.text import TextEncoderConfig, embed_dataset
    from genrec.tokenizers.workflow import load_dataset

    dataset = load_dataset({"preset": dataset_name})
    return embed_dataset(dataset, TextEncoderConfig()).embeddings


def mse(x: np.ndarray, recon: np.ndarray) -> float:
    return float(((x.astype(np.float64) - recon) ** 2).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--codebook-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--all-tokenizers", action="store_true", help="also time every genrec tokenizer's fit")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()

    try:
        import semantic_id
        from semantic_id import RQKMeans as SemanticIdRQKMeans
    except ImportError:
        print(f"error: {INSTALL_HINT}", file=sys.stderr)
        return 2

    from genrec.device import describe_machine
    from genrec.tokenizers import build_tokenizer
    from genrec.training.checkpoint import atomic_write_text

    load_before = os.getloadavg()
    x = load_embeddings(args.dataset)
    sizes = [args.codebook_size] * args.levels
    print(f"{args.dataset}: {x.shape[0]} items x {x.shape[1]} dims; RQ-KMeans {'x'.join(map(str, sizes))}")

    tok = build_tokenizer("rqkmeans", {"codebook_sizes": sizes, "seed": args.seed})
    start = time.perf_counter()
    tok.fit(x)
    genrec_seconds = time.perf_counter() - start
    genrec_mse = mse(x, tok.reconstruct(x))
    print(f"  genrec      fit {genrec_seconds:7.1f}s  mse {genrec_mse:.4e}")
    # The same without the joint codebook refinement passes: plain greedy residual k-means.
    plain = build_tokenizer("rqkmeans", {"codebook_sizes": sizes, "seed": args.seed, "refine_iters": 0})
    start = time.perf_counter()
    plain.fit(x)
    plain_seconds = time.perf_counter() - start
    plain_mse = mse(x, plain.reconstruct(x))
    print(f"  genrec (no refinement) fit {plain_seconds:7.1f}s  mse {plain_mse:.4e}")

    ref = SemanticIdRQKMeans(n_levels=args.levels, n_clusters=args.codebook_size, random_state=args.seed)
    start = time.perf_counter()
    ref.fit(x)
    ref_seconds = time.perf_counter() - start
    ref_codes = ref.encode(x)
    ref_mse = mse(x, ref.decode(ref_codes))
    print(f"  semantic-id fit {ref_seconds:7.1f}s  mse {ref_mse:.4e}")

    result = {
        "dataset": args.dataset,
        "n_items": int(x.shape[0]),
        "dim": int(x.shape[1]),
        "levels": args.levels,
        "codebook_size": args.codebook_size,
        "genrec_fit_seconds": genrec_seconds,
        "semantic_id_fit_seconds": ref_seconds,
        "speedup": ref_seconds / genrec_seconds,
        "genrec_mse": genrec_mse,
        "semantic_id_mse": ref_mse,
        "genrec_no_refine_fit_seconds": plain_seconds,
        "genrec_no_refine_mse": plain_mse,
        "genrec_settings": {k: getattr(tok.config, k) for k in ("niter", "nredo", "init", "refine_iters")},
        "semantic_id_settings": {"n_init": ref.n_init or "default (10)", "max_iter": ref.max_iter,
                                 "implementation": ref.implementation},
        "semantic_id_version": getattr(semantic_id, "__version__", "unknown"),
        "machine": {**describe_machine(),
                    "thread_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                                  "MKL_NUM_THREADS")},
                    # Other jobs share the cores on the development machine: the 1-minute load
                    # average before and after the comparison says how busy it was.
                    "load_average_before": load_before[0], "load_average_after": os.getloadavg()[0]},
    }
    print(f"  speed-up x{result['speedup']:.1f}; error ratio genrec/semantic-id "
          f"{genrec_mse / ref_mse:.3f}")

    if args.all_tokenizers:
        from genrec.tokenizers import TOKENIZERS

        timings = {}
        for name in TOKENIZERS.names():
            t = build_tokenizer(name, {"seed": args.seed})
            start = time.perf_counter()
            t.fit(x)
            timings[name] = time.perf_counter() - start
            print(f"  {name:9s} fit {timings[name]:7.1f}s")
        result["tokenizer_fit_seconds"] = timings

    atomic_write_text(json.dumps(result, indent=2), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
