"""Every tokenizer on every dataset with the default encoder: the diagnostics table for each.

    GENREC_DATA_DIR=../shared/data python benchmarks/tokenizers_all.py \\
        --out results/tokenizers.json --markdown results/tokenizers.md

For each dataset the items are embedded once (default encoder, all-MiniLM-L6-v2, from the
embeddings cache when present); each tokenizer is then fitted with its default config exactly
as `genrec tokenize --dataset D --tokenizer T --out RUNS/D/T` does, writing the same folder
(codes, fitted tokenizer, tokenizer_report.json, code_usage.png). A folder whose report
exists is reused unless --refit. Prints one table per dataset and checks the acceptance
criteria (unique IDs everywhere; level-1 utilisation >= 90% for rqvae and cost on beauty).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    import genrec  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))

ALL = ["rqvae", "cost", "rqkmeans", "pq", "opq", "hkmeans", "random"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["beauty", "office", "scientific"])
    parser.add_argument("--tokenizers", nargs="+", default=ALL)
    parser.add_argument("--runs-dir", default="runs/tokenizers")
    parser.add_argument("--refit", action="store_true", help="refit even when a report exists")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--markdown", help="also write the tables as Markdown here")
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from genrec.device import describe_machine, resolve_device
    from genrec.text import TextEncoderConfig, embed_dataset
    from genrec.tokenizers.diagnostics import format_table
    from genrec.tokenizers.workflow import REPORT_FILE, load_dataset, tokenize_dataset
    from genrec.training.checkpoint import atomic_write_text

    encoder = TextEncoderConfig()
    results: dict[str, list[dict]] = {}
    for name in args.datasets:
        dataset = load_dataset({"preset": name})
        embedded = embed_dataset(dataset, encoder)
        reports = []
        for tok_name in args.tokenizers:
            out_dir = Path(args.runs_dir) / name / tok_name
            report_path = out_dir / REPORT_FILE
            if report_path.is_file() and not args.refit:
                report = json.loads(report_path.read_text())
                print(f"reusing {report_path}")
            else:
                print(f"== {name} / {tok_name}", flush=True)
                _, report = tokenize_dataset(dataset, tok_name, None, encoder, out_dir,
                                             embeddings=embedded.embeddings, print_table=False)
                report["embeddings"] = {"path": str(embedded.cache_path), "encoder": encoder.model,
                                        "pooling": encoder.pooling, "dim": int(embedded.embeddings.shape[1])}
                atomic_write_text(json.dumps(report, indent=2, default=float), report_path)
            reports.append(report)
        results[name] = reports
        print(f"\n{name} ({dataset.num_items} items)\n{format_table(reports)}\n", flush=True)

    failures = []
    for name, reports in results.items():
        for r in reports:
            if not r["unique_ids"]:
                failures.append(f"{name}/{r['tokenizer']}: IDs not unique")
            if name == "beauty" and r["tokenizer"] in ("rqvae", "cost") and r["utilization"][0] < 0.9:
                failures.append(f"beauty/{r['tokenizer']}: level-1 utilisation {r['utilization'][0]:.3f} < 0.9")
    summary = {"machine": describe_machine(resolve_device("auto")),  # where RQ-VAE / CoST (device auto) fit
               "encoder": encoder.model, "results": results, "failures": failures}
    atomic_write_text(json.dumps(summary, indent=2, default=float), args.out)
    if args.markdown:
        parts = [f"### {name}\n\n{format_table(reports, markdown=True)}\n" for name, reports in results.items()]
        Path(args.markdown).write_text("\n".join(parts))
    print("acceptance:", "all passed" if not failures else "; ".join(failures))
    print(f"wrote {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
