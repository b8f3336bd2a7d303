"""`genrec tokenize` / `genrec embed`: config routing, output folder, report, cached embeddings."""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace

import numpy as np
import pytest

from genrec.commands import embed as embed_command
from genrec.commands import tokenize as tokenize_command
from genrec.config import ConfigError
from genrec.text import TextEncoderConfig
from genrec.tokenizers import load_tokenizer
from genrec.tokenizers.workflow import load_job, tokenize_dataset

REQUIRED = ("n_items", "unique_ids", "collision_rate", "utilization", "fit_seconds")


def fake_dataset(n=80, seed=0):
    rng = np.random.default_rng(seed)
    words = ["lipstick", "mascara", "drill", "hammer", "shampoo", "glue", "tape", "paper"]
    texts = [" ".join(rng.choice(words, size=3)) + f" {i % 7}" for i in range(n)]
    return SimpleNamespace(name="toy", num_items=n, item_ids=[""] + [f"item{i}" for i in range(n)],
                           item_text=[""] + texts, fingerprint="abc123")


class FakeEncoder:
    def __init__(self):
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        out = np.zeros((len(texts), 12), dtype=np.float32)
        for i, t in enumerate(texts):
            for j, word in enumerate(t.split()):
                out[i, (sum(map(ord, word)) + j) % 12] += 1.0
        return out


def test_load_job_routes_sections_and_bare_keys(tmp_path):
    cfg = tmp_path / "tok.yaml"
    cfg.write_text("data: {preset: office}\nencoder: {pooling: cls}\ntokenizer: {name: rqvae, steps: 9}\n")
    job = load_job(cfg, ["latent_dim=8", "encoder.batch_size=3", "tokenizer.lr=0.01"])
    assert job.tokenizer_name == "rqvae"
    assert (job.tokenizer.steps, job.tokenizer.latent_dim, job.tokenizer.lr) == (9, 8, 0.01)
    assert (job.encoder.pooling, job.encoder.batch_size) == ("cls", 3)
    assert job.data == {"preset": "office"}
    # CLI flags win over the file.
    job = load_job(cfg, [], dataset="beauty", tokenizer="pq", device="cpu")
    assert job.tokenizer_name == "pq" and job.data == {"preset": "beauty"}
    assert job.encoder.device == "cpu"
    # Per-tokenizer sections apply to the chosen tokenizer only.
    cfg.write_text("tokenizers: {pq: {num_subspaces: 4}, rqkmeans: {niter: 3}}\n")
    assert load_job(cfg, [], tokenizer="pq").tokenizer.num_subspaces == 4
    assert load_job(cfg, [], tokenizer="rqkmeans").tokenizer.niter == 3
    job = load_job(None, ["steps=3"], dataset="beauty", tokenizer="cost", device="cpu")
    assert job.tokenizer.device == "cpu" and job.tokenizer.steps == 3 and job.tokenizer.latent_dim == 96


def test_load_job_rejects_unknown_keys_and_missing_tokenizer():
    with pytest.raises(ConfigError, match="tokenizer.nlevels"):
        load_job(None, ["nlevels=3"], tokenizer="rqkmeans")
    with pytest.raises(ConfigError, match="no tokenizer"):
        load_job(None, [], dataset="beauty")


def test_tokenize_dataset_writes_codes_tokenizer_and_report(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache"))
    ds = fake_dataset()
    enc = FakeEncoder()
    out = tmp_path / "out"
    tok, report = tokenize_dataset(ds, "rqkmeans", {"codebook_sizes": [4, 4]}, TextEncoderConfig(show_progress=False),
                                   out, encoder=enc, print_table=False)
    assert enc.calls == 1
    for key in REQUIRED:
        assert key in report
    on_disk = json.loads((out / "tokenizer_report.json").read_text())
    assert on_disk["n_items"] == 80 and on_disk["unique_ids"] is True
    assert len(on_disk["utilization"]) == 2
    assert on_disk["embeddings"]["cache_hit"] is False
    codes = np.load(out / "codes.npy")
    assert codes.shape[0] == 80 and len(np.unique(codes, axis=0)) == 80
    assert json.loads((out / "item_ids.json").read_text())[0] == "item0"
    assert (out / "code_usage.png").read_bytes()[:4] == b"\x89PNG"
    np.testing.assert_array_equal(load_tokenizer(out).codes, codes)
    # The second run reuses the cached embeddings: the encoder is not called again.
    _, again = tokenize_dataset(ds, "hkmeans", {"branching": 4}, TextEncoderConfig(show_progress=False),
                                tmp_path / "out2", encoder=enc, print_table=False)
    assert enc.calls == 1 and again["embeddings"]["cache_hit"] is True
    assert again["unique_ids"] is True


def _parser():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    tokenize_command.register(sub)
    embed_command.register(sub)
    return parser


def test_tokenize_cli_with_given_embeddings(tmp_path, monkeypatch, capsys):
    ds = fake_dataset(n=64)
    monkeypatch.setattr(tokenize_command, "load_dataset", lambda data: ds)
    emb = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    np.save(tmp_path / "emb.npy", emb)
    out = tmp_path / "run"
    args = _parser().parse_args(["tokenize", "--dataset", "toy", "--tokenizer", "pq", "--set", "num_subspaces=2",
                                 "--set", "codebook_size=4", "--embeddings", str(tmp_path / "emb.npy"),
                                 "--out", str(out)])
    assert args.func(args) == 0
    report = json.loads((out / "tokenizer_report.json").read_text())
    assert report["tokenizer"] == "pq" and report["n_items"] == 64 and report["unique_ids"]
    assert report["level_sizes"][:2] == [4, 4]
    assert "coll.rate" in capsys.readouterr().out


def test_embed_cli_writes_npy(tmp_path, monkeypatch, capsys):
    ds = fake_dataset(n=10)
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(embed_command, "load_dataset", lambda data: ds)
    calls = []

    def fake_embed(dataset, cfg, use_cache=True):
        calls.append(cfg)
        from genrec.text import embed_dataset

        return embed_dataset(dataset, cfg, encoder=FakeEncoder(), use_cache=use_cache)

    monkeypatch.setattr(embed_command, "embed_dataset", fake_embed)
    args = _parser().parse_args(["embed", "--dataset", "toy", "--pooling", "cls", "--set", "batch_size=5",
                                 "--out", str(tmp_path / "e.npy")])
    assert args.func(args) == 0
    assert calls[0].pooling == "cls" and calls[0].batch_size == 5
    assert np.load(tmp_path / "e.npy").shape == (10, 12)
    assert "10 items x 12 dims" in capsys.readouterr().out


def test_cached_tokenizer_fits_once(tmp_path, monkeypatch):
    from genrec.tokenizers.workflow import cached_tokenizer
    from genrec.text import encoder as encoder_module

    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(encoder_module, "build_encoder", lambda cfg: FakeEncoder())
    ds = fake_dataset(n=50)
    first = cached_tokenizer(ds, "rqkmeans", {"codebook_sizes": [4, 4]})
    second = cached_tokenizer(ds, "rqkmeans", {"codebook_sizes": [4, 4]})
    np.testing.assert_array_equal(first.codes, second.codes)
    assert second.fit_seconds == first.fit_seconds  # loaded from the cache, not refitted
    folders = list((tmp_path / "cache" / "tokenizers").iterdir())
    assert len(folders) == 1 and (folders[0] / "tokenizer_report.json").is_file()
    cached_tokenizer(ds, "rqkmeans", {"codebook_sizes": [4, 8]})
    assert len(list((tmp_path / "cache" / "tokenizers").iterdir())) == 2
