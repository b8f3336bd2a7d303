"""Behaviour-aware semantic IDs: an ID model's item embeddings joined to the text embeddings."""

import json

import numpy as np
import pytest
import torch

from genrec.config import ConfigError
from genrec.data import prepare_dataset
from genrec.models import build_model
from genrec.tokenizers import build_tokenizer
from genrec.pipeline import evaluate, experiment_from_dict, load_run, run_experiment, setup
from genrec.tokenizers.workflow import cached_tokenizer, join_embeddings
from genrec.training.checkpoint import seed_everything

DATA = {"preset": "synthetic", "options": {"num_items": 100, "num_users": 150}}
TIGER = {"name": "tiger", "d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "num_heads": 2, "head_dim": 16,
         "ffn_size": 64, "max_history": 6, "beam_size": 10, "causal_encoder": True, "tokenizer": "rqkmeans",
         "tokenizer_params": {"codebook_sizes": [8, 8], "refine_iters": 0, "niter": 5}}
SASREC = {"name": "sasrec", "hidden_size": 16, "num_layers": 1, "num_heads": 1, "ffn_size": 32, "max_history": 10}
TRAIN = {"epochs": 1, "batch_size": 32, "warmup_steps": 2, "progress": False, "tensorboard": False}


def experiment(weight=1.0, behaviour_model=SASREC, model=TIGER):
    return experiment_from_dict({
        "data": DATA, "model": model, "train": {**TRAIN, "valid_ks": [10]}, "eval": {"ks": [5, 10]},
        "behaviour": {"weight": weight, "model": behaviour_model, "train": {**TRAIN, "epochs": 2},
                      "eval": {"ks": [10]}}})


def test_join_embeddings_puts_each_part_on_its_sphere():
    rng = np.random.default_rng(0)
    text, extra = rng.normal(size=(5, 4)) * 3, rng.normal(size=(5, 2))
    extra[4] = 0  # an item without behaviour vector (cold start)
    joined = join_embeddings(text, extra, 0.5)
    assert joined.shape == (5, 6) and joined.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(joined[:, :4], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(joined[:4, 4:], axis=1), 0.5, rtol=1e-6)
    assert not joined[4, 4:].any()
    with pytest.raises(ValueError, match="5 text embeddings but 3 extra"):
        join_embeddings(text, extra[:3], 1.0)


def test_behaviour_vectors_train_once_and_change_the_codes(tmp_path, monkeypatch):
    cfg = experiment()
    loads = []
    monkeypatch.setattr("genrec.pipeline.prepare_dataset",
                        lambda data, _load=prepare_dataset: loads.append(data) or _load(data))
    run = setup(cfg, tmp_path / "run")
    assert len(loads) == 1  # the behaviour stage trains on the run's dataset, not a second load
    stage = run.stages["behaviour"]
    assert stage["cache_hit"] is False and stage["train"]["epochs_run"] == 2 and stage["seconds"] > 0
    vectors = np.load(f"{stage['folder']}/item_embeddings.npy")
    assert vectors.shape == (run.dataset.num_items, 16)  # one row per item, the padding row dropped
    # the seed is set again after the stage, so the model starts as if built right after seeding
    seed_everything(cfg.seed)
    fresh = build_model("tiger", cfg.model.params, run.dataset, tokenizer=run.model.tokenizer).state_dict()
    assert all(torch.equal(v, fresh[k]) for k, v in run.model.state_dict().items())

    text_only = cached_tokenizer(run.dataset, "rqkmeans", TIGER["tokenizer_params"])
    assert not np.array_equal(np.asarray(run.model.tokenizer.codes), np.asarray(text_only.codes))

    run_experiment(cfg, tmp_path / "run")  # second time: vectors and codes from the caches
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["behaviour"]["cache_hit"] is True and "train" not in summary["behaviour"]
    reloaded = load_run(tmp_path / "run")
    assert np.array_equal(np.asarray(reloaded.model.tokenizer.codes), np.asarray(run.model.tokenizer.codes))
    assert (tmp_path / "run" / "config.yaml").read_text().count("behaviour:") == 1


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_a_run_folder_reloads_with_its_own_tokenizer_when_the_caches_are_gone(tmp_path, monkeypatch, weight):
    cfg = experiment(weight)
    metrics = run_experiment(cfg, tmp_path / "run")
    trained_codes = np.asarray(load_run(tmp_path / "run").model.tokenizer.codes)
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cleared-cache"))

    def refit(*args, **kwargs):
        raise AssertionError("the tokenizer or the behaviour model was fitted again")

    for name in ("genrec.pipeline.behaviour_vectors", "genrec.pipeline.cached_tokenizer",
                 "genrec.tokenizers.workflow.cached_tokenizer"):
        monkeypatch.setattr(name, refit)
    reloaded = load_run(tmp_path / "run")
    assert np.array_equal(np.asarray(reloaded.model.tokenizer.codes), trained_codes)
    assert evaluate(reloaded, ("test",))["test"] == metrics["test"]


@pytest.mark.parametrize("changes, message", [
    ({"model": {**SASREC}}, "behaviour.weight: model 'sasrec' has no tokenizer"),
    ({"weight": -1.0}, "behaviour.weight: must be >= 0"),
    ({"behaviour_model": {"name": "nope"}}, "unknown behaviour.model.name 'nope'"),
    ({"behaviour_model": {"name": "sasrec", "hidden": 3}}, "unknown config key 'behaviour.model.hidden'"),
    ({"behaviour_model": {"name": "popularity"}}, "behaviour.model: 'popularity' has no per-item embedding table"),
])
def test_bad_behaviour_settings_are_named_when_the_config_is_read(changes, message):
    with pytest.raises(ConfigError, match=message):
        experiment(**changes)


def test_new_items_without_behaviour_get_codes_from_their_text():
    rng = np.random.default_rng(0)
    text, behaviour = rng.normal(size=(200, 8)), rng.normal(size=(200, 4))
    tok = build_tokenizer("rqkmeans", {"codebook_sizes": [8, 8], "refine_iters": 0, "dedup": "always"})
    tok.fit(join_embeddings(text, behaviour, 1.0))
    new_text = rng.normal(size=(3, 8))
    codes = tok.add_items(join_embeddings(new_text, np.zeros((3, 4)), 1.0))
    assert codes.shape == (3, 3) and len(tok.codes) == 203
    assert len({tuple(c) for c in np.asarray(tok.codes).tolist()}) == 203  # still one ID per item
    with pytest.raises(ValueError, match="dimension 8, the tokenizer was fitted on 12"):
        tok.add_items(new_text)  # text alone is not the space the codes were fitted in


def test_a_fixed_behaviour_seed_shares_the_stage_across_experiment_seeds(tmp_path):
    def stage(seed, behaviour_seed):
        cfg = experiment()
        cfg.seed, cfg.behaviour.seed = seed, behaviour_seed
        return setup(cfg, tmp_path / f"run-{seed}-{behaviour_seed}").stages["behaviour"]

    first = stage(1, 7)
    assert first["cache_hit"] is False
    again = stage(2, 7)  # another generator seed, the same ID model and codes
    assert again["cache_hit"] is True and again["key"] == first["key"]
    assert stage(7, None)["key"] == first["key"]  # None = the experiment's seed
    assert stage(2, None)["key"] != first["key"]
