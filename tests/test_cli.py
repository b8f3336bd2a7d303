import json
import subprocess
import sys

from genrec.cli import main


def write_config(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(
        "data:\n  preset: synthetic\n  options: {num_items: 100, num_users: 120}\n"
        "model:\n  name: sasrec\n  hidden_size: 16\n  num_layers: 1\n  num_heads: 1\n  ffn_size: 32\n"
        "  max_history: 10\ntrain:\n  epochs: 1\n  batch_size: 32\n  progress: false\n  tensorboard: false\n")
    return path


def test_run_evaluate_recommend(tmp_path, capsys):
    config, out = write_config(tmp_path), tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--set", "train.lr=0.002"]) == 0
    assert "recall@10" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["ndcg@10"] <= metrics["test"]["recall@10"] <= 1.0
    assert "lr: 0.002" in (out / "config.yaml").read_text()

    assert main(["evaluate", str(out), "--split", "test"]) == 0
    assert "ndcg@10" in capsys.readouterr().out

    assert main(["recommend", str(out), "--items", "SYN00001", "SYN00002", "-k", "3", "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in recs] == [1, 2, 3] and all(r["title"] for r in recs)

    history = [r["item_id"] for r in recs[:2]]  # the model's own favourites, now "seen"
    assert main(["recommend", str(out), "--items", *history, "-k", "5", "--json", "--exclude-seen"]) == 0
    unseen = json.loads(capsys.readouterr().out)
    assert len(unseen) == 5 and not {r["item_id"] for r in unseen} & set(history)


def test_prepare_prints_the_log(tmp_path, capsys):
    assert main(["prepare", str(write_config(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "k-core" in out and "SYNTHETIC" in out


def test_bad_input_is_one_clear_line(tmp_path):
    config = write_config(tmp_path)
    config.write_text(config.read_text() + "bogus: 1\n")
    result = subprocess.run([sys.executable, "-m", "genrec.cli", "run", str(config)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown config key 'bogus'" in result.stderr and "Traceback" not in result.stderr


def test_unknown_item_in_recommend(tmp_path, capsys):
    config, out = write_config(tmp_path), tmp_path / "run"
    main(["run", str(config), "--out", str(out)])
    assert main(["recommend", str(out), "--items", "NOPE"]) == 2
    assert "unknown item id(s) 'NOPE'" in capsys.readouterr().err
