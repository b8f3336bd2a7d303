"""Item tokenizers: unique IDs, collisions, cold start, save/load, layouts, each algorithm's contract."""

from __future__ import annotations

import numpy as np
import pytest

from genrec.config import ConfigError
from genrec.tokenizers import (
    TOKENIZERS,
    VocabLayout,
    build_tokenizer,
    collision_stats,
    disambiguate,
    load_tokenizer,
)
from genrec.tokenizers.kmeans import capacity, capacity_assign, largest_share, nearest, residual_kmeans
from genrec.tokenizers.rqvae import GRADIENT_ESTIMATORS, RotationTrick, StraightThrough

FAST = {
    "rqkmeans": {"codebook_sizes": [8, 8, 8], "niter": 10},
    "pq": {"num_subspaces": 4, "codebook_size": 8},
    "opq": {"num_subspaces": 4, "codebook_size": 8, "opq_niter": 3},
    "hkmeans": {"branching": 6, "niter": 10},
    "random": {"codebook_sizes": [8, 8, 8]},
    "rqvae": {"codebook_sizes": [8, 8, 8], "latent_dim": 8, "hidden_dims": [32], "steps": 60,
              "batch_size": 128, "dead_code_reset_every": 20, "kmeans_niter": 5, "device": "cpu"},
    "cost": {"codebook_sizes": [8, 8, 8], "latent_dim": 8, "hidden_dims": [32], "steps": 60,
             "batch_size": 128, "dead_code_reset_every": 20, "kmeans_niter": 5, "device": "cpu"},
}


def clustered(n=300, dim=16, clusters=12, seed=0, noise=0.3):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim))
    x = centers[rng.integers(clusters, size=n)] + noise * rng.normal(size=(n, dim))
    return x.astype(np.float32)


def test_every_paper_tokenizer_is_registered():
    assert set(FAST) <= set(TOKENIZERS.names())


@pytest.fixture(scope="module")
def data():
    x = clustered()
    x[11] = x[10]  # identical embeddings must still end with distinct IDs
    x[12] = x[10]
    return x


@pytest.fixture(scope="module")
def fitted(data):
    out = {}
    for name, cfg in FAST.items():
        tok = build_tokenizer(name, cfg)
        out[name] = (tok, tok.fit(data))
    return out


@pytest.mark.parametrize("name", sorted(FAST))
def test_fit_gives_every_item_a_unique_id(fitted, data, name):
    tok, codes = fitted[name]
    assert codes.shape[0] == len(data)
    assert codes.shape[1] == tok.layout.num_levels
    assert len(np.unique(codes, axis=0)) == len(data)
    assert tok.unique_ids
    # Identical embeddings share semantic codes, so a disambiguation level must exist.
    assert tok.collisions.largest_group >= 3
    assert tok.layout.has_dedup_level
    dup = codes[[10, 11, 12]]
    assert (dup[:, :-1] == dup[0, :-1]).all()  # same semantic codes ...
    assert (np.diff(dup[:, -1]) > 0).all()  # ... told apart by increasing digits
    # Every code lies inside its level's range.
    assert (codes >= 0).all()
    assert (codes < np.asarray(tok.layout.level_sizes)).all()


@pytest.mark.parametrize("name", sorted(FAST))
def test_encode_of_fitted_items_reproduces_their_codes(fitted, data, name):
    tok, codes = fitted[name]
    semantic = tok.encode(data)
    assert semantic.shape == (len(data), tok.layout.n_semantic_levels)
    np.testing.assert_array_equal(semantic, codes[:, : tok.layout.n_semantic_levels])


@pytest.mark.parametrize("name", sorted(FAST))
def test_save_load_round_trip(fitted, data, tmp_path, name):
    tok, codes = fitted[name]
    tok.save(tmp_path / name)
    loaded = load_tokenizer(tmp_path / name)
    assert type(loaded) is type(tok)
    assert loaded.config == tok.config
    np.testing.assert_array_equal(loaded.codes, codes)
    assert loaded.layout.level_sizes == tok.layout.level_sizes
    np.testing.assert_array_equal(loaded.encode(data[:50]), tok.encode(data[:50]))
    np.testing.assert_array_equal(loaded.lookup(codes[[3, 7]]), [3, 7])


def test_a_save_cut_off_over_an_older_folder_leaves_no_loadable_half(fitted, tmp_path, monkeypatch):
    tok, _ = fitted["rqkmeans"]
    tok.save(tmp_path / "tok")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", killed)  # dies after codes.npy, before state.npz
    with pytest.raises(KeyboardInterrupt):
        tok.save(tmp_path / "tok")
    with pytest.raises(FileNotFoundError, match="missing tokenizer.json"):
        load_tokenizer(tmp_path / "tok")


def test_lookup_maps_codes_back_to_items(fitted):
    tok, codes = fitted["rqkmeans"]
    rows = np.array([0, 5, 99, 299])
    np.testing.assert_array_equal(tok.lookup(codes[rows]), rows)
    bogus = codes[:1].copy()
    bogus[0, -1] = tok.layout.level_sizes[-1] + 5
    assert tok.lookup(bogus)[0] == -1


def test_cold_start_items_get_fresh_unique_ids(data):
    tok = build_tokenizer("rqkmeans", FAST["rqkmeans"])
    tok.fit(data[:250])
    new = np.concatenate([data[250:], data[:2]])  # two exact copies of fitted items
    added = tok.add_items(new)
    assert added.shape == (len(new), tok.layout.num_levels)
    assert len(np.unique(tok.codes, axis=0)) == len(tok.codes) == len(new) + 250
    # A copy of item 0 shares item 0's semantic code but not its final ID.
    np.testing.assert_array_equal(added[-2, :-1], tok.codes[0, :-1])
    assert added[-2, -1] != tok.codes[0, -1]
    np.testing.assert_array_equal(tok.lookup(added), np.arange(250, 250 + len(new)))


def test_disambiguation_and_collision_stats_on_a_constructed_case():
    codes = np.array([[1, 2], [1, 2], [3, 4], [1, 2], [3, 4], [5, 6]])
    stats = collision_stats(codes)
    assert stats.n_items == 6
    assert stats.n_unique_semantic_ids == 3
    assert stats.n_colliding_items == 5
    assert stats.n_collision_groups == 2
    assert stats.largest_group == 3
    assert stats.collision_rate == pytest.approx(5 / 6)
    final, _, size = disambiguate(codes, "auto")
    assert size == 3
    np.testing.assert_array_equal(final[:, -1], [0, 1, 0, 2, 1, 0])
    assert len(np.unique(final, axis=0)) == 6
    # auto adds no level when nothing collides; always does (TIGER); never leaves duplicates.
    unique = np.array([[0, 1], [1, 0]])
    assert disambiguate(unique, "auto")[0].shape == (2, 2)
    assert disambiguate(unique, "always")[0].shape == (2, 3)
    assert disambiguate(codes, "never")[0].shape == (6, 2)
    with pytest.raises(ValueError):
        disambiguate(codes, "sometimes")


def test_vocab_layout_offsets_and_tokens():
    layout = VocabLayout([4, 5, 3], n_semantic_levels=2)
    assert layout.offsets == [0, 4, 9]
    assert layout.vocab_size == 12
    codes = np.array([[3, 4, 2], [0, 0, 0]])
    tokens = layout.to_tokens(codes)
    np.testing.assert_array_equal(tokens, [[3, 8, 11], [0, 4, 9]])
    np.testing.assert_array_equal(layout.from_tokens(tokens), codes)
    assert VocabLayout.from_dict(layout.to_dict()) == layout


def test_pq_code_has_one_entry_per_subspace(fitted, data):
    for name in ("pq", "opq"):
        tok, _ = fitted[name]
        assert tok.layout.n_semantic_levels == FAST[name]["num_subspaces"]
        assert tok.centroids.shape == (4, 8, data.shape[1] // 4)
    tok, _ = fitted["opq"]
    rot = tok.rotation_matrix
    np.testing.assert_allclose(rot @ rot.T, np.eye(rot.shape[0]), atol=1e-4)
    assert fitted["pq"][0].rotation_matrix is None


def test_pq_rejects_bad_shapes(data):
    with pytest.raises(ValueError, match="divisible"):
        build_tokenizer("pq", {"num_subspaces": 5, "codebook_size": 8}).fit(data)
    with pytest.raises(ValueError, match="power of two"):
        build_tokenizer("pq", {"num_subspaces": 4, "codebook_size": 10}).fit(data)


def test_pq_reconstruction_beats_the_mean(fitted, data):
    tok, _ = fitted["opq"]
    err = ((tok.reconstruct(data) - data) ** 2).mean()
    assert err < ((data - data.mean(0)) ** 2).mean()


def test_hkmeans_leaves_hold_at_most_k_items_and_paths_are_padded(fitted, data):
    tok, codes = fitted["hkmeans"]
    k = FAST["hkmeans"]["branching"]
    counts = np.bincount(tok.member_leaf)
    # Only the unsplittable group of three identical rows could exceed k; here none does.
    assert counts.max() <= k
    assert tok.depth >= 2  # 300 items with k=6 need several levels
    n_path = tok.depth
    semantic = codes[:, : tok.layout.n_semantic_levels]
    path, position = semantic[:, :n_path], semantic[:, n_path]
    assert (position < k).all()
    assert (path[:, 0] < k).all()  # the root always splits
    # Padding only ever follows real cluster indices.
    is_pad = path == k
    assert not (is_pad[:, :-1] & ~is_pad[:, 1:]).any()
    assert tok.layout.pad_codes[1:n_path] == [k] * (n_path - 1)


def test_hkmeans_small_catalogue_is_one_leaf():
    x = clustered(n=5, dim=4)
    tok = build_tokenizer("hkmeans", {"branching": 8, "dedup": "auto"})
    codes = tok.fit(x)
    assert codes.shape == (5, 1)
    assert sorted(codes[:, 0]) == [0, 1, 2, 3, 4]


def test_hkmeans_cold_start_item_joins_a_leaf_with_a_fresh_digit(data):
    tok = build_tokenizer("hkmeans", FAST["hkmeans"])
    tok.fit(data[:200])
    new = data[200:203] + 0.01
    added = tok.add_items(new)
    assert len(np.unique(tok.codes, axis=0)) == 203
    # Each new item takes the path and position of an existing item, told apart by the digit.
    for row in added:
        assert (tok.codes[:200, :-1] == row[:-1]).all(axis=1).any()


def test_random_codes_are_seeded(data):
    a = build_tokenizer("random", {"codebook_sizes": [16, 16], "seed": 1}).fit(data)
    b = build_tokenizer("random", {"codebook_sizes": [16, 16], "seed": 1}).fit(data)
    c = build_tokenizer("random", {"codebook_sizes": [16, 16], "seed": 2}).fit(data)
    np.testing.assert_array_equal(a, b)
    assert (a[:, :2] != c[:, :2]).any()


def test_rqkmeans_error_falls_with_more_levels(data):
    errs = []
    for levels in (1, 2, 3):
        tok = build_tokenizer("rqkmeans", {"codebook_sizes": [8] * levels})
        tok.fit(data)
        errs.append(((tok.reconstruct(data) - data) ** 2).mean())
    assert errs[0] > errs[1] > errs[2]


def test_rqkmeans_joint_refinement_lowers_the_error():
    x = clustered(n=400, dim=16, clusters=30, seed=3)
    errs = {}
    for passes in (0, 5):
        tok = build_tokenizer("rqkmeans", {"codebook_sizes": [8, 8, 8], "refine_iters": passes})
        codes = tok.fit(x)
        np.testing.assert_array_equal(tok.encode(x), codes[:, :3])
        errs[passes] = ((tok.reconstruct(x) - x) ** 2).mean()
    assert errs[5] < errs[0]


def near_isotropic_with_exact_items(n=600, dim=64, exact=5):
    """Residual-like data: isotropic noise plus a few rows already reconstructed exactly (zero).
    Plain k-means puts a centroid on the zeros that then takes almost every row."""
    x = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    x[:exact] = 0
    return x


def test_capacity_assign_keeps_the_limit_and_is_nearest_when_the_limit_is_loose():
    x = clustered(n=300, dim=16, clusters=12)
    centroids = x[:8]
    np.testing.assert_array_equal(capacity_assign(x, centroids, len(x)), nearest(x, centroids)[0])
    tight = capacity(len(x), 8, 1.0)
    idx = capacity_assign(x, centroids, tight)
    assert idx.min() >= 0 and np.bincount(idx, minlength=8).max() <= tight
    with pytest.raises(ValueError, match="cannot hold"):
        capacity_assign(x, centroids, tight - 2)


def test_a_collapsed_level_is_named_and_a_cap_balances_it(caplog):
    x = near_isotropic_with_exact_items()
    with caplog.at_level("WARNING", logger="genrec.tokenizers.kmeans"):
        _, plain = residual_kmeans(x, [16], seed=0)
    assert largest_share(plain[:, 0]) > 0.5
    assert "level 1 collapsed" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="genrec.tokenizers.kmeans"):
        _, capped = residual_kmeans(x, [16], seed=0, cap=2.0)
    assert np.bincount(capped[:, 0]).max() <= capacity(len(x), 16, 2.0)
    assert "collapsed" not in caplog.text


def test_rqkmeans_cap_holds_every_level_in_fitting_and_is_checked():
    x = near_isotropic_with_exact_items()
    tok = build_tokenizer("rqkmeans", {"codebook_sizes": [16, 16], "cap": 2.0})
    codes = tok.fit(x)
    for level in range(2):
        assert np.bincount(tok.semantic_codes[:, level]).max() <= capacity(len(x), 16, 2.0)
    assert len({tuple(c) for c in codes.tolist()}) == len(x)
    assert tok.encode(x[:3]).shape == (3, 2)  # items added later: plain nearest centroid
    with pytest.raises(ConfigError, match="cap"):
        build_tokenizer("rqkmeans", {"cap": 0.5})


def test_cost_is_the_rqvae_class_with_paper_defaults():
    from genrec.tokenizers import CoSTTokenizer, RQVAETokenizer

    tok = build_tokenizer("cost")
    assert isinstance(tok, RQVAETokenizer)
    # No method of its own: CoST only changes the registered name and the config defaults.
    assert [k for k, v in vars(CoSTTokenizer).items() if callable(v) and k != "Config"] == []
    c = tok.config
    assert (c.codebook_sizes, c.latent_dim, c.temperature, c.reconstruction_weight) == ([64] * 3, 96, 0.1, 0.1)
    assert c.contrastive_weight > 0
    r = build_tokenizer("rqvae").config
    assert (r.codebook_sizes, r.contrastive_weight, r.dedup) == ([256] * 3, 0.0, "always")


def test_cost_contrastive_only_loss_decreases(data):
    cfg = dict(FAST["cost"], reconstruction_weight=0.0, contrastive_weight=1.0, steps=80, log_every=10)
    tok = build_tokenizer("cost", cfg)
    codes = tok.fit(data)
    assert len(np.unique(codes, axis=0)) == len(data)
    history = tok.fit_info["history"]
    assert "reconstruction" not in history[0]
    first, last = history[0]["contrastive"], history[-1]["contrastive"]
    assert last < first * 0.9


def test_rqvae_reconstruction_only_has_no_contrastive_term(fitted):
    tok, _ = fitted["rqvae"]
    assert "contrastive" not in tok.fit_info["history"][-1]
    assert "reconstruction" in tok.fit_info["history"][-1]


def test_rqvae_reconstruction_loss_decreases_and_codes_are_used(data):
    tok = build_tokenizer("rqvae", dict(FAST["rqvae"], steps=150, log_every=10))
    tok.fit(data)
    history = tok.fit_info["history"]
    assert history[-1]["reconstruction"] < history[0]["reconstruction"]
    level1 = np.unique(tok.semantic_codes[:, 0]).size
    assert level1 >= 6  # of 8: k-means init + dead-code re-seeding keep the codebook alive


def test_dead_codes_are_reseeded(data):
    cfg = dict(FAST["rqvae"], kmeans_init=False, steps=40, dead_code_reset_every=10)
    tok = build_tokenizer("rqvae", cfg)
    tok.fit(data)
    assert tok.fit_info["dead_codes_reset"] > 0
    off = build_tokenizer("rqvae", dict(cfg, dead_code_reset_every=0))
    off.fit(data)
    assert off.fit_info["dead_codes_reset"] == 0


def test_rotation_trick_forward_is_the_quantised_vector_and_gradients_flow():
    import torch

    torch.manual_seed(0)
    z = torch.randn(5, 8, requires_grad=True)
    z_q = torch.randn(5, 8)
    for estimator in (StraightThrough(), RotationTrick()):
        out = estimator(z, z_q)
        torch.testing.assert_close(out, z_q, atol=1e-5, rtol=1e-5)
        (grad,) = torch.autograd.grad(out.sum(), z)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # STE passes the gradient unchanged; the rotation trick does not.
    (g_rot,) = torch.autograd.grad(RotationTrick()(z, z_q).sum(), z)
    assert not torch.allclose(g_rot, torch.ones_like(g_rot))
    assert set(GRADIENT_ESTIMATORS) == {"ste", "rotation"}


def test_rqvae_with_rotation_trick_fits(data):
    tok = build_tokenizer("rqvae", dict(FAST["rqvae"], gradient_estimator="rotation", steps=30))
    codes = tok.fit(data)
    assert len(np.unique(codes, axis=0)) == len(data)


def test_bad_configs_are_rejected():
    with pytest.raises(ConfigError, match="unknown config key"):
        build_tokenizer("rqkmeans", {"levels": 3})
    with pytest.raises(ValueError):
        build_tokenizer("rqvae", {"gradient_estimator": "magic"})
    with pytest.raises(KeyError, match="unknown tokenizer"):
        build_tokenizer("vqvae")
    with pytest.raises(ConfigError):
        build_tokenizer("rqkmeans", {"dedup": "sometimes"})
    tok = build_tokenizer("rqkmeans", FAST["rqkmeans"])
    with pytest.raises(RuntimeError, match="not fitted"):
        tok.encode(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        tok.fit(np.full((20, 4), np.nan, dtype=np.float32))


def test_overrides_merge_into_typed_config():
    tok = build_tokenizer("rqvae", overrides={"steps": 7, "codebook_sizes": [4, 4]})
    assert tok.config.steps == 7 and tok.config.codebook_sizes == [4, 4]
    assert tok.config.latent_dim == 32


def test_encode_checks_dimension(fitted):
    tok, _ = fitted["rqkmeans"]
    with pytest.raises(ValueError, match="dimension"):
        tok.encode(np.zeros((2, 3), dtype=np.float32))
