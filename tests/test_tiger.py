import itertools

import numpy as np
import pytest
import torch

import genrec.models.tiger  # noqa: F401  (registers "tiger")
from genrec.data import prepare_dataset, preset
from genrec.evaluation import EvalConfig, Evaluator
from genrec.models import build_model
from genrec.models.tiger import TIGER, TIGERConfig, additive_mask
from genrec.models.trie import CodeTrie
from genrec.tokenizers import build_tokenizer

TINY = {"d_model": 32, "encoder_layers": 1, "decoder_layers": 2, "num_heads": 2, "head_dim": 24,
        "ffn_size": 64, "dropout": 0.0, "max_history": 6, "beam_size": 10}


@pytest.fixture(scope="module")
def small():
    return prepare_dataset(preset("synthetic", options={"num_items": 120, "num_users": 200}), cache=False)


@pytest.fixture(scope="module")
def tokenizer(small):
    """rq-kmeans on random embeddings: small codebooks, so items collide and get a dedup digit."""
    tok = build_tokenizer("rqkmeans", {"codebook_sizes": [8, 8], "refine_iters": 0, "dedup": "always"})
    tok.fit(np.random.default_rng(0).normal(size=(small.num_items, 16)).astype(np.float32))
    return tok


def tiny_tiger(dataset, tokenizer, **kw):
    torch.manual_seed(0)
    return TIGER(TIGERConfig(**{**TINY, **kw}), dataset, tokenizer=tokenizer)


def test_trie_allows_exactly_the_valid_prefixes():
    rng = np.random.default_rng(1)
    sizes = [4, 3, 5]
    all_codes = np.array(list(itertools.product(*map(range, sizes))))
    codes = all_codes[rng.choice(len(all_codes), 25, replace=False)]
    trie = CodeTrie(codes, level_sizes=sizes)
    valid = [{tuple(r) for r in codes[:, :l].tolist()} for l in range(len(sizes) + 1)]
    # Walk every prefix of every depth through the tables.
    frontier = {(): 0}
    for level, size in enumerate(sizes):
        nxt = {}
        for prefix, pid in frontier.items():
            allowed, child = trie.step(level, torch.tensor(pid))
            for code in range(size):
                extended = prefix + (code,)
                assert bool(allowed[code]) == (extended in valid[level + 1])
                assert (int(child[code]) >= 0) == (extended in valid[level + 1])
                if extended in valid[level + 1]:
                    nxt[extended] = int(child[code])
        frontier = nxt
    # Leaves map to the right item (row + 1), and lookup agrees.
    assert {p: i for p, i in frontier.items()} == {tuple(c): r + 1 for r, c in enumerate(codes.tolist())}
    assert trie.lookup(torch.from_numpy(codes)).tolist() == list(range(1, 26))
    missing = [c for c in all_codes.tolist() if tuple(c) not in valid[3]][:5]
    assert (trie.lookup(torch.tensor(missing)) == -1).all()
    # Cold start: an added row becomes reachable with its item index.
    new = np.array([missing[0]])
    trie.add(new, np.array([99]))
    assert trie.lookup(torch.from_numpy(new)).tolist() == [99]


def _histories(dataset, n=16, width=6):
    rows = []
    for user in range(n):
        seq = dataset.sequence(user)[:-2][-width:]
        rows.append(np.pad(seq, (width - len(seq), 0)))
    return torch.from_numpy(np.stack(rows))


def test_training_batches_cover_every_training_transition(small, tokenizer):
    model = tiny_tiger(small, tokenizer, max_history=4)
    batches = list(model.training_batches(small, 64, np.random.default_rng(0)))
    starts, ends = small.train_ranges()
    assert sum(len(b["targets"]) for b in batches) == int(np.maximum(ends - starts - 1, 0).sum())
    for batch in batches:
        history, targets, users = batch["history"], batch["targets"], batch["users"]
        assert history.shape[1] <= 4 and (history[:, -1] > 0).all()
        for h, t, u in zip(history[:3].tolist(), targets[:3].tolist(), users[:3].tolist()):
            seq = small.sequence(u)[:-2].tolist()
            h = [i for i in h if i > 0]
            pos = next(j for j in range(1, len(seq)) if seq[j] == t and seq[max(0, j - 4):j] == h)
            assert pos >= 1


def test_loss_decreases(small, tokenizer):
    model = tiny_tiger(small, tokenizer)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = next(iter(model.training_batches(small, 64, np.random.default_rng(0))))
    first = model.calculate_loss(batch).item()
    for _ in range(15):
        optimizer.zero_grad()
        model.calculate_loss(batch).backward()
        optimizer.step()
    assert model.calculate_loss(batch).item() < first * 0.8


@pytest.mark.parametrize("pool", [False, True])
def test_beam_search_returns_distinct_valid_items_and_matches_uncached_decoder(small, tokenizer, pool):
    model = tiny_tiger(small, tokenizer, user_tokens=7, pool_history_codes=pool).eval()
    with torch.no_grad():  # untrained weights are nearly uniform: sharpen them so ties are unlikely
        model.token_embedding.weight.mul_(4.0)
    history = _histories(small)
    users = torch.arange(len(history))
    fast, fast_scores = model.beam_search(history, 10, users, use_cache=True)
    slow, slow_scores = model.beam_search(history, 10, users, use_cache=False)
    assert torch.equal(fast, slow)
    torch.testing.assert_close(fast_scores, slow_scores)
    assert ((fast >= 1) & (fast <= small.num_items)).all()
    assert all(len(set(row)) == len(row) for row in fast.tolist())
    assert (fast_scores[:, :-1] >= fast_scores[:, 1:]).all()  # ranked by log-probability
    # Scores are the sum of the per-level log-probabilities (softmax over the whole vocabulary)
    # of the returned codes, as teacher forcing computes them; item 0 (none) gets -inf.
    codes = model.item_codes[fast[0, 3]][None]  # (1, L), the user's 4th item
    assert model.trie.lookup(codes).item() == fast[0, 3].item()
    with torch.no_grad():
        memory, visible = model.encode(model.encoder_tokens(history[:1], users[:1]))
        inputs = torch.cat([torch.ones(1, 1, dtype=torch.long), model.code_tokens(codes[:, :-1])], dim=1)
        states, _ = model.decode(inputs, memory, additive_mask(visible[:, None, None], torch.float32))
        logp = torch.log_softmax(model.logits(states), -1)[0]
    total = sum(logp[level, tok].item() for level, tok in enumerate(model.code_tokens(codes)[0].tolist()))
    assert total == pytest.approx(fast_scores[0, 3].item(), abs=1e-4)
    candidates = torch.cat([fast, torch.zeros_like(fast[:, :1])], dim=1)
    per_level = model.code_log_probs(history, candidates, users)
    assert per_level.shape == (*candidates.shape, model.num_levels)
    torch.testing.assert_close(per_level[:, :-1].sum(-1), fast_scores, atol=1e-4, rtol=0)
    assert torch.isinf(per_level[:, -1]).all()
    # Asking for more items than beam_size widens the beam; every item is reachable.
    everything, scores = model.beam_search(history[:2], small.num_items + 5)
    assert sorted(everything[0, :small.num_items].tolist()) == list(range(1, small.num_items + 1))
    assert (everything[:, small.num_items:] == 0).all() and torch.isinf(scores[:, small.num_items:]).all()


def test_renormalized_beam_scores_are_a_distribution_over_the_items(small, tokenizer):
    """Renormalised at every step, the scores of all items sum to one per user; the whole-vocabulary
    scores sum to less (mass on invalid tokens) and rank the items differently."""
    history = _histories(small, n=4)
    ranked = {}
    for scoring in ("vocabulary", "renormalized"):
        model = tiny_tiger(small, tokenizer, beam_scoring=scoring).eval()
        with torch.no_grad():
            model.token_embedding.weight.mul_(4.0)
        items, scores = model.beam_search(history, small.num_items)
        assert sorted(items[0].tolist()) == list(range(1, small.num_items + 1))
        ranked[scoring] = items
        total = scores.exp().sum(dim=1)
        if scoring == "renormalized":
            torch.testing.assert_close(total, torch.ones_like(total))
        else:
            assert (total < 0.99).all()
    assert not torch.equal(ranked["vocabulary"], ranked["renormalized"])


def test_beam_search_ignores_left_padding(small, tokenizer):
    model = tiny_tiger(small, tokenizer).eval()
    with torch.no_grad():
        model.token_embedding.weight.mul_(4.0)
    a, sa = model.beam_search(torch.tensor([[5, 9, 3]]), 5)
    b, sb = model.beam_search(torch.tensor([[0, 0, 5, 9, 3]]), 5)
    assert torch.equal(a, b)
    torch.testing.assert_close(sa, sb)


def test_cold_start_items_become_recommendable(small, tokenizer):
    model = tiny_tiger(small, tokenizer).eval()
    tok = build_tokenizer("rqkmeans", tokenizer.config)  # a copy, so the shared fixture is untouched
    tok.fit(np.random.default_rng(0).normal(size=(small.num_items, 16)).astype(np.float32))
    new_codes = tok.add_items(np.random.default_rng(5).normal(size=(3, 16)).astype(np.float32))
    # One more, whose disambiguation digit is beyond the trained range: the vocabulary grows.
    new_codes = np.concatenate([new_codes, [[1, 2, int(model.level_sizes[-1]) + 2]]])
    before = model.level_sizes[-1]
    new_items = model.add_items(new_codes)
    assert new_items.tolist() == list(range(small.num_items + 1, small.num_items + 5))
    assert model.num_items == small.num_items + 4 and model.level_sizes[-1] == before + 3
    assert model.trie.lookup(torch.from_numpy(new_codes)).tolist() == new_items.tolist()
    # Force the model to prefer the last new item's codes: beam search must then return it first.
    target = int(new_items[-1])
    favoured = [model.level_offsets[level] + int(code) for level, code in enumerate(new_codes[-1])]
    boost = torch.zeros(model.vocab_size)
    boost[favoured] = 50.0
    plain_logits = model.logits
    model.logits = lambda states: plain_logits(states) + boost
    items, _ = model.beam_search(_histories(small, n=4), 5)
    assert (items[:, 0] == target).all()
    # New items can also appear in histories.
    items, _ = model.beam_search(torch.tensor([[3, int(new_items[0])]]), 5)
    assert items[0, 0].item() == target


def test_evaluator_and_build_model(small):
    """The registered model, built from its config (tokenizer fitted via the cache), evaluates."""
    params = {**TINY, "tokenizer": "rqkmeans",
              "tokenizer_params": {"codebook_sizes": [8, 8], "refine_iters": 0, "niter": 5}}
    torch.manual_seed(0)
    model = build_model("tiger", params, small)
    assert isinstance(model, TIGER) and model.output == "ranked"
    result = Evaluator(EvalConfig(ks=[5, 10], batch_size=64), small).evaluate(model, "valid", progress=False)
    assert result["invalid_rate"] == 0.0
    assert result["users"] == small.num_users
    assert 0.0 <= result["recall@10"] <= 1.0


@pytest.mark.parametrize("pool", [False, True])
def test_window_loss_equals_the_per_prefix_loss_with_a_causal_encoder(small, tokenizer, pool):
    """The fast formulation computes, in one pass, exactly the per-target losses of the paper's
    one-sample-per-prefix formulation (same weights, block-causal encoder, no dropout), with
    one encoder position per code token or per item (pooled)."""
    model = tiny_tiger(small, tokenizer, causal_encoder=True, user_tokens=5, max_history=4, pool_history_codes=pool)
    rng = np.random.default_rng(0)
    windows = next(iter(model.training_batches(small, 16, rng)))
    assert set(windows) == {"window", "users"} and windows["window"].shape[1] <= 5
    fast = model.calculate_loss(windows)
    losses, count = 0.0, 0
    for window, user in zip(windows["window"].tolist(), windows["users"].tolist()):
        for j in range(1, len(window)):
            if window[j - 1] == 0:  # the window's first item is not a target
                continue
            batch = {"history": torch.tensor([window[:j]]), "targets": torch.tensor([window[j]]),
                     "users": torch.tensor([user])}
            losses += model.calculate_loss(batch).item() * model.num_levels
            count += model.num_levels
    assert fast.item() == pytest.approx(losses / count, rel=1e-4)
    # Every training transition is a target exactly once across the windows of an epoch.
    batches = list(model.training_batches(small, 64, rng))
    starts, ends = small.train_ranges()
    assert sum(int((b["window"][:, :-1] > 0).sum()) for b in batches) == int(np.maximum(ends - starts - 1, 0).sum())


@pytest.mark.parametrize("causal", [False, True])
def test_attention_runs_in_fp32_inside_a_bf16_step(small, tokenizer, causal, monkeypatch):
    """CUDA's fused bf16 attention made training diverge (docs/results.md), so every attention
    product gets fp32 inputs under bf16 autocast, while the linear layers around it stay bf16."""
    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording(q, k, v, attn_mask=None, **kw):
        seen.append({q.dtype, k.dtype, v.dtype, attn_mask.dtype, torch.is_autocast_enabled("cpu")})
        return sdpa(q, k, v, attn_mask=attn_mask, **kw)

    monkeypatch.setattr(genrec.models.tiger.F, "scaled_dot_product_attention", recording)
    model = tiny_tiger(small, tokenizer, causal_encoder=causal)
    batch = next(iter(model.training_batches(small, 16, np.random.default_rng(0))))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.calculate_loss(batch)
        projected = model.decoder[0].self_attn.o(torch.ones(2, model.config.num_heads * model.config.head_dim))
    assert projected.dtype == torch.bfloat16 and torch.isfinite(loss)
    assert len(seen) == model.config.encoder_layers + 2 * model.config.decoder_layers
    assert all(kinds == {torch.float32, False} for kinds in seen)


@pytest.mark.parametrize("pool", [False, True])
def test_causal_encoder_beam_search_ignores_left_padding(small, tokenizer, pool):
    model = tiny_tiger(small, tokenizer, causal_encoder=True, pool_history_codes=pool).eval()
    a, sa = model.beam_search(torch.tensor([[5, 9, 3]]), 5)
    b, sb = model.beam_search(torch.tensor([[0, 0, 5, 9, 3]]), 5)
    assert torch.equal(a, b)
    torch.testing.assert_close(sa, sb)


def test_pooled_history_reads_one_position_per_item(small, tokenizer):
    model = tiny_tiger(small, tokenizer, user_tokens=5, pool_history_codes=True)
    tokens = model.encoder_tokens(torch.tensor([[0, 5, 9, 3]]), torch.tensor([2]))
    assert tokens.shape == (1, 5, model.num_levels)  # user position + 4 item positions
    assert (tokens[0, 1] == 0).all() and (tokens[0, 0, 1:] == 0).all()
    torch.testing.assert_close(tokens[0, 4], model.code_tokens(model.item_codes[3]))
    with pytest.raises(ValueError, match="no T5 equivalent"):
        model.export_t5()


def test_exported_weights_run_unchanged_in_transformers_t5(small, tokenizer):
    """Same logits in Hugging Face's T5, and its constrained beam search finds the same items."""
    transformers = pytest.importorskip("transformers")
    # Equal stack depths: transformers 5 sizes its generation cache by the encoder depth.
    model = tiny_tiger(small, tokenizer, user_tokens=3, dropout=0.1, encoder_layers=2).eval()
    with torch.no_grad():
        model.token_embedding.weight.mul_(4.0)
    kwargs, state = model.export_t5()
    hf = transformers.T5ForConditionalGeneration(transformers.T5Config(**kwargs)).eval()
    hf.load_state_dict(state)
    history = _histories(small, n=6)
    users = torch.arange(6)
    tokens = model.encoder_tokens(history, users)
    codes = model.item_codes[history[:, -1]]
    inputs = torch.cat([torch.ones(6, 1, dtype=torch.long), model.code_tokens(codes[:, :-1])], dim=1)
    with torch.no_grad():
        memory, visible = model.encode(tokens)
        states, _ = model.decode(inputs, memory, additive_mask(visible[:, None, None], torch.float32))
        ours = model.logits(states)
        theirs = hf(input_ids=tokens, attention_mask=(tokens != 0).long(), decoder_input_ids=inputs).logits
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    items, _ = model.beam_search(history, 5, users)
    allowed = model.trie.allowed_tokens(model.level_offsets)
    out = hf.generate(input_ids=tokens, attention_mask=(tokens != 0).long(), num_beams=10, num_return_sequences=5,
                      max_new_tokens=model.num_levels, do_sample=False,
                      prefix_allowed_tokens_fn=lambda b, ids: allowed[tuple(ids[1:].tolist())])
    hf_items = model.trie.lookup(out[:, 1:] - torch.tensor(model.level_offsets)).reshape(6, 5)
    assert torch.equal(items, hf_items)


def test_recommend_shows_semantic_ids(small, tokenizer, tmp_path):
    from genrec.pipeline import Run, experiment_from_dict, recommend

    model = tiny_tiger(small, tokenizer).eval()
    run = Run(experiment_from_dict({"model": {"name": "tiger", **TINY}}), small, model, tmp_path, torch.device("cpu"))
    history = [small.item_ids[i] for i in small.sequence(0)[:3]]
    recs = recommend(run, history, k=5)
    assert [r["rank"] for r in recs] == [1, 2, 3, 4, 5]
    index = small.item_index()
    for rec in recs:
        assert rec["semantic_id"] == tokenizer.codes[index[rec["item_id"]] - 1].tolist()


@pytest.mark.parametrize("changes, message", [
    ({"tokenizer": "rqkmeanz"}, "model.tokenizer: 'rqkmeanz'"),
    ({"tokenizer": "rqkmeans", "tokenizer_params": {"steps": 10}}, "model.tokenizer_params.steps"),
    ({"activation": "swish"}, "model.activation: 'swish'"),
    ({"beam_scoring": "normalised"}, "model.beam_scoring: 'normalised'"),
    ({"dropout": 1.0}, r"model.dropout must be in \[0, 1\), got 1.0"),
])
def test_bad_model_options_are_named_when_the_config_is_read(changes, message):
    with pytest.raises(ValueError, match=message):
        TIGERConfig(**changes)
