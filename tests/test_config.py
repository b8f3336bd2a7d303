from pathlib import Path

import pytest

from genrec.config import ConfigError, load_yaml_layers, parse_overrides
from genrec.pipeline import experiment_from_dict, load_experiment


def test_inherit_and_override(tmp_path):
    (tmp_path / "base.yaml").write_text("model:\n  name: sasrec\n  hidden_size: 32\ntrain:\n  lr: 0.01\n")
    (tmp_path / "exp.yaml").write_text("inherit: base.yaml\ndata:\n  preset: synthetic\ntrain:\n  epochs: 3\n")
    cfg = load_experiment(tmp_path / "exp.yaml", ["train.lr=5e-4", "model.num_layers=1"])
    assert cfg.train.lr == 5e-4 and cfg.train.epochs == 3
    assert cfg.model.params["hidden_size"] == 32 and cfg.model.params["num_layers"] == 1
    assert cfg.data.format == "synthetic"


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="model.hidden_sise"):
        experiment_from_dict({"model": {"name": "sasrec", "hidden_sise": 3}})
    with pytest.raises(ConfigError, match="train.lrr"):
        experiment_from_dict({"train": {"lrr": 1}})


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match="train.epochs"):
        experiment_from_dict({"train": {"epochs": "many"}})


def test_unknown_model_and_preset():
    with pytest.raises(ConfigError, match="unknown model.name 'nope'"):
        experiment_from_dict({"model": {"name": "nope"}})
    with pytest.raises(ConfigError, match="data.preset: unknown dataset"):
        experiment_from_dict({"data": {"preset": "nope"}})


def test_override_syntax_error():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["train.lr"])


def test_override_value_that_is_not_yaml_names_the_override():
    with pytest.raises(ConfigError, match=r"override 'train.betas=\[1,': the value is not valid YAML"):
        parse_overrides(["train.betas=[1,"])


def test_override_into_a_value_or_over_a_section_is_refused():
    with pytest.raises(ConfigError, match="earlier override set 'train' to a value"):
        parse_overrides(["train=5", "train.lr=1"])
    assert parse_overrides(["train.lr=1", "train.lr=2"]) == {"train": {"lr": 2}}
    assert parse_overrides(["data.options={a: 1}", "data.options={b: 2}"]) == {"data": {"options": {"b": 2}}}


def test_sections_must_be_mappings():
    with pytest.raises(ConfigError, match="model: expected a mapping of keys, got 'sasrec'"):
        experiment_from_dict({"model": "sasrec"})
    with pytest.raises(ConfigError, match="data: expected a mapping of keys, got 'synthetic'"):
        experiment_from_dict({"data": "synthetic"})


def test_unknown_keys_of_mixed_types_are_named():
    with pytest.raises(ConfigError, match="unknown config key"):
        experiment_from_dict({1: "x", "nme": "y"})


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_yaml_layers(tmp_path / "none.yaml")
    (tmp_path / "child.yaml").write_text("inherit: gone.yaml\n")
    with pytest.raises(ConfigError, match=r"gone.yaml \(inherited by .*child.yaml\)"):
        load_yaml_layers(tmp_path / "child.yaml")


def test_inherit_cycle_and_bad_inherit_are_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("inherit: b.yaml\n")
    (tmp_path / "b.yaml").write_text("inherit: [a.yaml]\n")
    with pytest.raises(ConfigError, match=r"inherits from itself \(.*a.yaml -> .*b.yaml -> .*a.yaml\)"):
        load_yaml_layers(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("inherit: 5\n")
    with pytest.raises(ConfigError, match="inherit must be a file name or a list of file names, got 5"):
        load_yaml_layers(tmp_path / "c.yaml")


def test_a_key_given_twice_is_an_error(tmp_path):
    (tmp_path / "twice.yaml").write_text("train:\n  lr: 0.5\nmodel:\n  name: sasrec\ntrain:\n  epochs: 2\n")
    with pytest.raises(ConfigError, match="twice.yaml: invalid YAML: .*key 'train' appears twice"):
        load_yaml_layers(tmp_path / "twice.yaml")
    (tmp_path / "merge.yaml").write_text("base: &base {lr: 0.5, epochs: 2}\ntrain:\n  <<: *base\n  lr: 0.1\n")
    assert load_yaml_layers(tmp_path / "merge.yaml")["train"] == {"lr": 0.1, "epochs": 2}
    (tmp_path / "listkey.yaml").write_text("? [a, b]\n: 1\n")
    with pytest.raises(ConfigError, match="listkey.yaml: invalid YAML"):
        load_yaml_layers(tmp_path / "listkey.yaml")


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    (tmp_path / "latin.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin.yaml: not UTF-8 text"):
        load_yaml_layers(tmp_path / "latin.yaml")


SHIPPED = sorted(p for p in (Path(__file__).parents[1] / "configs").glob("*/*.yaml") if p.parent.name != "base")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_experiment_config_loads(path):
    """A typo in a shipped YAML (unknown key, bad value, broken inherit) fails here, not in a user's run."""
    cfg = load_experiment(path)
    assert cfg.model.name


def test_default_run_folder_is_named_after_the_config_file():
    """Two configs of one model get separate default run folders, so neither overwrites the other."""
    from genrec.pipeline import default_run_dir
    root = Path(__file__).resolve().parents[1] / "configs" / "beauty"
    paper, tuned = (load_experiment(root / f"{name}.yaml") for name in ("tiger", "tiger-fast-tuned"))
    assert default_run_dir(paper) == Path("runs/beauty/tiger")
    assert default_run_dir(tuned) == Path("runs/beauty/tiger-fast-tuned")
    assert default_run_dir(load_experiment(root / "tiger.yaml", ["name=mine"])) == Path("runs/beauty/mine")
    assert default_run_dir(experiment_from_dict({"data": {"preset": "beauty"}})) == Path("runs/beauty/sasrec")
