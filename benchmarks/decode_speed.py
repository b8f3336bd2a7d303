"""Constrained beam search: genrec against Hugging Face transformers, on the same trained weights.

    pip install transformers        # benchmark environment only (it is in genrec's `dev` extra)
    genrec run configs/beauty/tiger.yaml --out runs/beauty-tiger
    python benchmarks/decode_speed.py --run-dir runs/beauty-tiger --out decode_speed.json

The run's TIGER is exported to a `transformers` T5 (`TIGER.export_t5()`: same network, same
weights). Both decoders then return the top-10 items of the same test users, beam 20:
genrec's batched beam search (trie held as tensors, encoder once per user, cached decoder
keys/values) and `T5ForConditionalGeneration.generate(num_beams=20, num_return_sequences=10,
prefix_allowed_tokens_fn=...)` with the trie as a Python dict of allowed next tokens. Both
score an item by its sequence log-probability (softmax over the whole vocabulary, disallowed
tokens removed), so their lists should agree up to ties. Writes genrec_users_per_s,
hf_users_per_s, speedup and same_top10 (share of users whose ordered top-10 lists are equal).
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

from genrec.data.batching import pad_left  # noqa: E402
from genrec.device import describe_machine, synchronize  # noqa: E402
from genrec.pipeline import load_run  # noqa: E402
from genrec.training.checkpoint import atomic_write_text  # noqa: E402

INSTALL_HINT = "this benchmark needs Hugging Face transformers: pip install transformers"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, type=Path, help="output folder of `genrec run` on a TIGER config")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--users", type=int, default=1024, help="test users decoded by each (0 = all)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--beams", type=int, default=20)
    parser.add_argument("--device", default=None, help="default: the run's device setting")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    try:
        import transformers
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        run = load_run(args.run_dir, args.device)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    model, dataset, device = run.model.eval(), run.dataset, run.device
    if run.config.model.name != "tiger":
        print(f"{args.run_dir} holds a '{run.config.model.name}' run; this benchmark needs a TIGER run", file=sys.stderr)
        return 2
    if model.config.causal_encoder:
        print(f"{args.run_dir} was trained with model.causal_encoder=true, which T5 cannot run; "
              "use a run of configs/<dataset>/tiger.yaml", file=sys.stderr)
        return 2
    model.config.beam_size = args.beams
    kwargs, state = model.export_t5()
    hf = transformers.T5ForConditionalGeneration(transformers.T5Config(**kwargs))
    hf.load_state_dict(state)
    hf = hf.to(device).eval()
    offsets = torch.tensor(model.level_offsets, device=device)
    allowed = model.trie.allowed_tokens(model.level_offsets)

    def allowed_next(_batch_id: int, ids: torch.Tensor) -> list[int]:
        return allowed.get(tuple(ids[1:].tolist()), [])

    split = dataset.eval_split("test")
    users = len(split.users) if args.users <= 0 else min(args.users, len(split.users))
    order = np.argsort(split.ends - split.starts, kind="stable")[np.linspace(0, len(split.users) - 1, users).astype(int)]
    batches = []
    for begin in range(0, users, args.batch_size):
        rows = order[begin:begin + args.batch_size]
        history = torch.from_numpy(pad_left(dataset.items, split.starts[rows], split.ends[rows], model.max_history))
        batches.append((history.to(device), torch.from_numpy(split.users[rows]).to(device)))

    def genrec_top(history, user_ids):
        return model.beam_search(history, args.top, user_ids)[0]

    def hf_top(history, user_ids):
        tokens = model.encoder_tokens(history, user_ids)
        out = hf.generate(input_ids=tokens, attention_mask=(tokens != 0).long(), num_beams=args.beams,
                          num_return_sequences=args.top, max_new_tokens=model.num_levels, do_sample=False,
                          prefix_allowed_tokens_fn=allowed_next)
        return model.trie.lookup(out[:, 1:] - offsets).reshape(len(history), args.top)

    results, seconds = {}, {}
    with torch.no_grad():
        for name, top in (("genrec", genrec_top), ("hf", hf_top)):
            top(*batches[0])  # warm-up
            synchronize(device)
            start = time.perf_counter()
            results[name] = torch.cat([top(*b) for b in batches]).cpu()
            synchronize(device)
            seconds[name] = time.perf_counter() - start
            print(f"{name:7s} {users / seconds[name]:9.1f} users/s", flush=True)
    same = (results["genrec"] == results["hf"]).all(dim=1).float().mean().item()
    same_set = np.mean([set(a) == set(b) for a, b in zip(results["genrec"].tolist(), results["hf"].tolist())])
    result = {"run_dir": str(args.run_dir), "machine": describe_machine(device),
              "transformers": transformers.__version__,
              "users": users, "batch_size": args.batch_size, "beams": args.beams, "top": args.top,
              "genrec_users_per_s": round(users / seconds["genrec"], 2), "hf_users_per_s": round(users / seconds["hf"], 2),
              "speedup": round(seconds["hf"] / seconds["genrec"], 2), "same_top10": round(same, 4),
              "same_top10_as_sets": round(float(same_set), 4),
              "hf_invalid_rate": round(float((results["hf"] < 0).float().mean()), 6)}
    print(f"speedup {result['speedup']}x, same ordered top-{args.top} for {same:.1%} of users "
          f"({same_set:.1%} as sets)")
    if args.out:
        atomic_write_text(json.dumps(result, indent=2), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
