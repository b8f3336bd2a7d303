import dataclasses
import json
import logging
import math
import re

import numpy as np
import pytest
import torch

from genrec.config import ConfigError
from genrec.pipeline import experiment_from_dict, load_run, run_experiment, setup, train
from genrec.training.trainer import (
    TrainConfig,
    Trainer,
    build_optimizer,
    effective_lr,
    epochs_within_time,
    load_optimizer_state,
    lr_factor,
)


def tiny_config(**train):
    return experiment_from_dict({
        "data": {"preset": "synthetic", "options": {"num_items": 100, "num_users": 150}},
        "model": {"name": "sasrec", "hidden_size": 16, "num_layers": 1, "num_heads": 1, "ffn_size": 32,
                  "dropout": 0.3, "max_history": 10},
        "train": {"epochs": 3, "batch_size": 32, "warmup_steps": 5, "progress": False, "tensorboard": False,
                  **train},
        "eval": {"ks": [5, 10]},
    })


def weights(run_dir):
    return torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"]


ADAFACTOR = {"optimizer": "adafactor", "lr": 0.01, "schedule": "constant", "warmup_steps": 0}


@pytest.mark.parametrize("optimizer", [{}, ADAFACTOR], ids=["adamw", "adafactor"])
def test_resume_matches_uninterrupted_run(tmp_path, monkeypatch, optimizer):
    straight = tmp_path / "straight"
    train(setup(tiny_config(**optimizer), straight))
    # killed half-way through the third epoch, then resumed
    interrupted = tmp_path / "interrupted"
    original = Trainer._train_epoch

    def dies_in_epoch_three(self):
        if self.epoch == 2:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "_train_epoch", dies_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        train(setup(tiny_config(**optimizer), interrupted))
    monkeypatch.setattr(Trainer, "_train_epoch", original)
    summary = train(setup(tiny_config(**optimizer), interrupted), resume=True)
    assert summary["epochs_run"] == 3
    a, b = weights(straight), weights(interrupted)
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(line) for line in (interrupted / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert json.loads((straight / "log.jsonl").read_text().splitlines()[-1])["valid"] == log[-1]["valid"]


def test_early_stopping_keeps_best_weights(tmp_path):
    # lr 0 after warm-up: validation never improves after epoch 1, so patience 2 stops at epoch 3
    run = setup(tiny_config(epochs=10, patience=2, lr=1e-9, warmup_steps=0, schedule="constant"), tmp_path)
    summary = train(run)
    assert summary["best_epoch"] == 1 and summary["epochs_run"] == 3 and summary["stopped_early"]
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert all(torch.equal(best[k], v) for k, v in run.model.state_dict().items())


def test_no_temp_files_left_behind(tmp_path):
    train(setup(tiny_config(epochs=1), tmp_path))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_run_writes_metrics_and_reloads(tmp_path):
    metrics = run_experiment(tiny_config(epochs=1), tmp_path)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert set(on_disk) == {"valid", "test"} and on_disk["test"]["recall@10"] == metrics["test"]["recall@10"]
    assert {"recall@5", "ndcg@5", "recall@10", "ndcg@10"} <= set(on_disk["test"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["peak_memory_mb"] > 0 and summary["mean_epoch_seconds"] > 0
    assert "device" not in summary and summary["machine"]["device"] in ("cpu", "cuda:0", "cuda")
    assert (summary["machine"]["gpu"] is None) == (summary["machine"]["device"] == "cpu")
    assert summary["machine"]["cpu"] and summary["machine"]["torch"] == torch.__version__
    run = load_run(tmp_path)
    assert run.model.training is False and run.config.model.params["hidden_size"] == 16


def test_weights_that_do_not_fit_the_config_fail_with_the_file_named(tmp_path):
    run_experiment(tiny_config(epochs=1), tmp_path)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    missing = next(iter(best))
    torch.save({k: v for k, v in best.items() if k != missing}, tmp_path / "best.pt")
    with pytest.raises(ValueError, match=rf"best\.pt: .*1 missing parameter\(s\), e\.g\. {re.escape(missing)}"):
        load_run(tmp_path)
    # a config whose sizes differ from the saved weights': the shapes are named, not a torch traceback
    torch.save(best, tmp_path / "best.pt")
    config = (tmp_path / "config.yaml").read_text()
    (tmp_path / "config.yaml").write_text(config.replace("hidden_size: 16", "hidden_size: 24"))
    with pytest.raises(ValueError, match=r"best\.pt: .*size mismatch for"):
        load_run(tmp_path)
    # resuming from such a checkpoint fails the same way
    wider = tiny_config(epochs=1)
    wider.model.params["hidden_size"] = 24
    with pytest.raises(ValueError, match=r"checkpoint\.pt: .*size mismatch for"):
        train(setup(wider, tmp_path), resume=True)


def test_lr_schedule_warmup_and_decay():
    cfg = TrainConfig(warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(0, 100, cfg) == 0.1 and lr_factor(9, 100, cfg) == 1.0
    assert math.isclose(lr_factor(100, 100, cfg), 0.1)
    assert 0.1 < lr_factor(55, 100, cfg) < 1.0


def test_time_limit_stops_after_a_validated_epoch(tmp_path):
    run = setup(tiny_config(epochs=5, eval_every=3, time_limit_minutes=1e-6), tmp_path / "run")
    summary = train(run)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert summary["stopped_by_time_limit"] and summary["epochs_run"] == 1
    assert len(log) == 1 and "valid" in log[0] and log[0]["elapsed_seconds"] > 0
    assert (tmp_path / "run" / "best.pt").is_file()
    # resuming a run whose budget is spent trains no further epoch
    resumed = train(setup(tiny_config(epochs=5, eval_every=3, time_limit_minutes=1e-6), tmp_path / "run"),
                    resume=True)
    assert resumed["epochs_run"] == 1 and resumed["stopped_by_time_limit"]


def test_the_job_budget_counts_the_time_before_training_and_keeps_it_on_resume(tmp_path, caplog):
    cfg = dataclasses.replace(tiny_config(epochs=3), time_budget_minutes=1.0)
    assert train(setup(cfg, tmp_path / "fresh"), seconds_before=0.0)["epochs_run"] == 3  # a minute is plenty
    with caplog.at_level(logging.INFO, logger="genrec.training.trainer"):
        summary = train(setup(cfg, tmp_path / "run"), seconds_before=59.999)  # stages took the minute
    assert summary["stopped_by_time_limit"] and summary["epochs_run"] == 1
    assert "time_budget_minutes=1 (the job's 1.0 minutes before training included) reached after epoch 1" in caplog.text
    # the resumed job's own stages were quick (cached), but the first job's minute is still spent
    resumed = train(setup(cfg, tmp_path / "run"), resume=True, seconds_before=0.1)
    assert resumed["epochs_run"] == 1 and resumed["stopped_by_time_limit"]


class FakeClock:
    """time.perf_counter for the trainer: each call is 30 s after the last, so every epoch
    (four calls: fit, epoch start and end, fit) takes 90 s of training and validation."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 30.0
        return self.now


def test_epochs_within_time_counts_the_epoch_that_crosses_the_limit():
    assert epochs_within_time(10, 0, 0.0, 100.0) == 10  # nothing measured yet: the whole schedule
    assert epochs_within_time(10, 1, 90.0, 410.0) == 6  # 4.6 epochs' time left: 5 more start
    assert epochs_within_time(10, 2, 180.0, 360.0) == 6  # exactly 4 more
    assert epochs_within_time(10, 1, 90.0, 5000.0) == 10  # the limit is beyond the schedule
    assert epochs_within_time(10, 3, 270.0, -1.0) == 4  # past the limit: the epoch running is the last


@pytest.mark.parametrize("horizon", ["epochs", "time_limit"])
def test_a_time_limit_horizon_ends_the_decay_where_the_limit_stops_training(tmp_path, monkeypatch, horizon):
    monkeypatch.setattr("genrec.training.trainer.time", FakeClock())
    cfg = tiny_config(epochs=10, eval_every=3, time_limit_minutes=500 / 60, schedule_horizon=horizon)
    summary = train(setup(cfg, tmp_path / horizon))
    log = [json.loads(line) for line in (tmp_path / horizon / "log.jsonl").read_text().splitlines()]
    # epochs end at 90, 180, ..., 540 s: the sixth crosses 500 s and is the last, validated
    assert summary["stopped_by_time_limit"] and summary["epochs_run"] == 6 and "valid" in log[-1]
    min_lr = cfg.train.lr * cfg.train.min_lr_ratio
    if horizon == "time_limit":
        assert [r["schedule_epochs"] for r in log] == [10, 6, 6, 6, 6, 6]
        assert math.isclose(log[-1]["lr"], min_lr)
    else:  # cut off at epoch 6 of 10, the rate still high
        assert "schedule_epochs" not in log[-1] and log[-1]["lr"] > 3 * min_lr


def test_a_validation_that_crosses_the_time_limit_ends_training(tmp_path, monkeypatch):
    monkeypatch.setattr("genrec.training.trainer.time", FakeClock())
    # epoch 3's training ends at 210 s (180 + 30), under the limit; its validation takes it to 270 s
    summary = train(setup(tiny_config(epochs=10, eval_every=3, time_limit_minutes=250 / 60), tmp_path))
    assert summary["epochs_run"] == 3 and summary["stopped_by_time_limit"]


def test_a_negative_job_budget_is_a_config_error():
    with pytest.raises(ConfigError, match="time_budget_minutes: must be >= 0"):
        experiment_from_dict({"time_budget_minutes": -5})


def test_stop_after_epoch_runs_the_start_of_the_schedule_and_resume_finishes_it(tmp_path):
    straight = tmp_path / "straight"
    train(setup(tiny_config(epochs=3, eval_every=5), straight))
    probe = tmp_path / "probe"
    summary = train(setup(tiny_config(epochs=3, eval_every=5, stop_after_epoch=2), probe))
    log = [json.loads(line) for line in (probe / "log.jsonl").read_text().splitlines()]
    straight_log = [json.loads(line) for line in (straight / "log.jsonl").read_text().splitlines()]
    assert summary["epochs_run"] == 2 and not summary["stopped_early"]
    assert "valid" in log[-1] and (probe / "best.pt").is_file()  # the stopping epoch is validated
    # the learning rate is where the 3-epoch schedule has it after epoch 2, not decayed to its end
    assert log[-1]["lr"] == straight_log[1]["lr"] > straight_log[-1]["lr"]
    resumed = train(setup(tiny_config(epochs=3, eval_every=5), probe), resume=True)
    assert resumed["epochs_run"] == 3
    a, b = weights(straight), weights(probe)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_negative_stop_after_epoch_is_a_clear_error():
    with pytest.raises(ValueError, match="train.stop_after_epoch must be >= 0"):
        tiny_config(stop_after_epoch=-1)


def test_bf16_precision_trains_under_autocast_with_fp32_weights(tmp_path, monkeypatch):
    from genrec.models.sasrec import SASRec
    seen = []
    original = SASRec.calculate_loss

    def recording(self, batch):
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return original(self, batch)

    monkeypatch.setattr(SASRec, "calculate_loss", recording)
    fp32 = setup(tiny_config(epochs=1), tmp_path / "fp32")
    train(fp32)
    assert seen and not any(seen)
    seen.clear()
    bf16 = setup(tiny_config(epochs=1, precision="bf16"), tmp_path / "bf16")
    train(bf16)
    assert seen and all(seen)
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())
    losses = [json.loads((tmp_path / name / "log.jsonl").read_text())["train_loss"] for name in ("fp32", "bf16")]
    assert math.isclose(losses[0], losses[1], rel_tol=0.02)


@pytest.mark.parametrize("field, value", [("precision", "fp8"), ("schedule", "cosinus"), ("schedule_horizon", "forever"),
                                          ("optimizer", "sgd")])
def test_unknown_precision_schedule_or_optimizer_is_a_clear_error_when_the_config_is_read(field, value):
    with pytest.raises(ValueError, match=f"train.{field} '{value}'"):
        tiny_config(**{field: value})


def test_adamw_betas_with_adafactor_is_a_clear_error():
    with pytest.raises(ValueError, match="train.betas is an AdamW setting; train.optimizer is 'adafactor'"):
        tiny_config(**ADAFACTOR, betas=[0.9, 0.99])


@pytest.mark.parametrize("shape", [(4,), (6, 4)], ids=["vector", "factored matrix"])
def test_adafactor_at_a_constant_lr_of_0_01_steps_as_t5s_schedule(shape):
    # The paper config's claim: PyTorch's Adafactor caps its relative step at min(lr, 1/sqrt(t)),
    # so a constant lr of 0.01 is 0.01 for the first 10k steps, then inverse-sqrt decay (T5X).
    param = torch.nn.Parameter(torch.ones(shape))
    optimizer = build_optimizer([param], TrainConfig(**ADAFACTOR))

    def update_at(step):
        if optimizer.state:
            optimizer.state[param]["step"] = torch.tensor(float(step - 1))
        before = param.detach().clone()
        param.grad = torch.ones(shape)
        optimizer.step()
        return ((before - param.detach()).abs().mean() / before.pow(2).mean().sqrt()).item()

    for step, expected in [(1, 0.01), (10_000, 0.01), (20_000, 0.01 / math.sqrt(2)), (40_000, 0.005)]:
        assert math.isclose(update_at(step), expected, rel_tol=1e-3), step
        assert math.isclose(effective_lr(0.01, step, TrainConfig(**ADAFACTOR)), expected, rel_tol=1e-3), step
    assert effective_lr(0.01, 40_000, TrainConfig(lr=0.01)) == 0.01  # AdamW takes the lr as it is


def test_adamw_is_fused_on_the_cpu_and_steps_as_the_per_parameter_loop():
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(3))]
    reference = [torch.nn.Parameter(p.detach().clone()) for p in params]
    cfg = TrainConfig(lr=0.01, weight_decay=0.1)
    fused = build_optimizer(params, cfg)
    loop = torch.optim.AdamW(reference, lr=0.01, weight_decay=0.1, betas=(0.9, 0.98), foreach=False)
    assert fused.param_groups[0]["fused"] is True
    start = [p.detach().clone() for p in params]
    for _ in range(5):
        grads = [torch.randn_like(p) for p in params]
        for p, q, g in zip(params, reference, grads):
            p.grad, q.grad = g.clone(), g.clone()
        fused.step()
        loop.step()
    for p, q in zip(params, reference):
        assert torch.allclose(p, q, atol=1e-6)
    assert all(not torch.allclose(p, s) for p, s in zip(params, start))  # it did move them


def test_a_checkpoint_of_the_per_parameter_adamw_resumes_fused():
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(4, 3))
    twin = torch.nn.Parameter(param.detach().clone())
    loop = torch.optim.AdamW([param], lr=0.01, betas=(0.9, 0.98), foreach=False)  # as saved before 2026-12-02
    reference = torch.optim.AdamW([twin], lr=0.01, betas=(0.9, 0.98), foreach=False)
    for _ in range(3):
        grad = torch.randn(4, 3)
        param.grad, twin.grad = grad.clone(), grad.clone()
        loop.step()
        reference.step()
    resumed = build_optimizer([param], TrainConfig(lr=0.01))
    load_optimizer_state(resumed, loop.state_dict())
    assert resumed.param_groups[0]["fused"] is True  # not the saved group's None
    assert resumed.state[param]["step"].dtype == torch.float32 and resumed.state[param]["step"].item() == 3
    grad = torch.randn(4, 3)
    param.grad, twin.grad = grad.clone(), grad.clone()
    resumed.step()
    reference.step()
    assert torch.allclose(param, twin, atol=1e-6)  # the moments carried over


def test_the_trainer_uses_the_configured_optimizer(tmp_path):
    run = setup(tiny_config(**ADAFACTOR, epochs=2), tmp_path)
    train(run)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["optimizer"]["state"]
    assert state and all("variance" in s or "row_var" in s for s in state.values())  # Adafactor's, not AdamW's
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log[1]["train_loss"] < log[0]["train_loss"]


def test_resuming_with_another_optimizer_is_a_clear_error(tmp_path):
    train(setup(tiny_config(epochs=1), tmp_path))  # AdamW
    with pytest.raises(ValueError, match=r"checkpoint.pt was trained with train.optimizer=adamw, this config "
                                         r"says adafactor: resume with the same optimizer, or start in a new --out"):
        train(setup(tiny_config(**ADAFACTOR, epochs=2), tmp_path), resume=True)
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert checkpoint["optimizer_name"] == "adamw"


@pytest.mark.parametrize("optimizer", ["adamw", "adafactor"])
def test_a_checkpoint_from_before_optimizers_were_named_resumes(tmp_path, optimizer):
    """Older checkpoints carry no optimizer_name: the optimizer is told by its state's hyper-parameters."""
    chosen = ADAFACTOR if optimizer == "adafactor" else {}
    train(setup(tiny_config(**chosen, epochs=1), tmp_path))
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    del checkpoint["optimizer_name"]
    torch.save(checkpoint, tmp_path / "checkpoint.pt")
    other = {} if optimizer == "adafactor" else ADAFACTOR
    with pytest.raises(ValueError, match=f"trained with train.optimizer={optimizer}, this config"):
        train(setup(tiny_config(**other, epochs=2), tmp_path), resume=True)
    assert train(setup(tiny_config(**chosen, epochs=2), tmp_path), resume=True)["epochs_run"] == 2


def test_valid_ks_limits_the_cut_offs_computed_at_each_validation(tmp_path):
    run = setup(tiny_config(epochs=1, valid_metric="ndcg@5", valid_ks=[5]), tmp_path / "run")
    train(run)
    valid = json.loads((tmp_path / "run" / "log.jsonl").read_text())["valid"]
    assert {k for k in valid if "@" in k} == {"recall@5", "ndcg@5"}


@pytest.mark.parametrize("train_fields, message", [
    ({"valid_metric": "auc"}, "train.valid_metric 'auc' is not recall@K or ndcg@K"),
    ({"valid_metric": "ndcg@20", "valid_ks": [10]}, r"needs 20 in train.valid_ks \[10\]"),
])
def test_bad_valid_metric_is_a_clear_error_when_the_config_is_read(train_fields, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**train_fields)


def test_valid_metric_outside_eval_ks_fails_before_training(tmp_path):
    run = setup(tiny_config(valid_metric="ndcg@20"), tmp_path / "run")
    with pytest.raises(ValueError, match=r"needs 20 in eval.ks \[5, 10\]"):
        train(run)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def nan_every(period):
    """SASRec.calculate_loss that returns NaN on every `period`-th call."""
    from genrec.models.sasrec import SASRec
    original, calls = SASRec.calculate_loss, []

    def patched(self, batch):
        calls.append(1)
        loss = original(self, batch)
        return loss * float("nan") if len(calls) % period == 0 else loss
    return patched


def test_a_step_with_a_non_finite_loss_is_skipped_and_counted(tmp_path, monkeypatch):
    from genrec.models.sasrec import SASRec
    monkeypatch.setattr(SASRec, "calculate_loss", nan_every(3))
    run = setup(tiny_config(epochs=2), tmp_path)
    summary = train(run)
    assert summary["epochs_run"] == 2
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert sum(r["skipped_steps"] for r in log) > 0
    assert all(math.isfinite(r["train_loss"]) for r in log)
    assert all(torch.isfinite(p).all() for p in run.model.parameters())


def test_a_step_with_a_non_finite_gradient_is_skipped(tmp_path, monkeypatch):
    from genrec.models.sasrec import SASRec
    original, calls = SASRec.calculate_loss, []

    def inf_gradient_once(self, batch):
        calls.append(1)
        loss = original(self, batch)
        if len(calls) == 2:  # finite loss, infinite gradient
            first = next(self.parameters())
            first.register_hook(lambda grad: grad * math.inf if len(calls) == 2 else grad)
        return loss

    monkeypatch.setattr(SASRec, "calculate_loss", inf_gradient_once)
    run = setup(tiny_config(epochs=1), tmp_path)
    train(run)
    log = json.loads((tmp_path / "log.jsonl").read_text())
    assert log["skipped_steps"] == 1
    assert all(torch.isfinite(p).all() for p in run.model.parameters())


@pytest.mark.parametrize("limit", [0, 3])
def test_too_many_non_finite_steps_in_a_row_stop_the_run(tmp_path, monkeypatch, limit):
    from genrec.models.sasrec import SASRec
    monkeypatch.setattr(SASRec, "calculate_loss", nan_every(1))
    run = setup(tiny_config(epochs=1, max_skipped_steps=limit), tmp_path)
    with pytest.raises(FloatingPointError, match=f"{limit + 1} steps in a row.*max_skipped_steps={limit}"):
        train(run)


def test_non_finite_steps_in_a_row_are_counted_across_epochs(tmp_path, monkeypatch):
    """Two bad steps at the end of epoch 1 and two at the start of epoch 2 are four in a row."""
    from genrec.models.sasrec import SASRec
    run = setup(tiny_config(epochs=2, max_skipped_steps=3), tmp_path)
    per_epoch = sum(1 for _ in run.model.training_batches(run.dataset, run.config.train.batch_size,
                                                          np.random.default_rng(0)))
    assert per_epoch > 2
    original, calls = SASRec.calculate_loss, []

    def bad_around_the_epoch_boundary(self, batch):
        calls.append(1)
        loss = original(self, batch)
        return loss * float("nan") if per_epoch - 2 < len(calls) <= per_epoch + 2 else loss

    monkeypatch.setattr(SASRec, "calculate_loss", bad_around_the_epoch_boundary)
    with pytest.raises(FloatingPointError, match="at epoch 2, 4 steps in a row"):
        train(run)


def test_a_grad_clip_of_zero_or_below_means_no_clipping(tmp_path):
    for name, clip in (("off", 0.0), ("negative", -1.0)):
        train(setup(tiny_config(epochs=1, grad_clip=clip), tmp_path / name))
    a, b = weights(tmp_path / "off"), weights(tmp_path / "negative")
    assert all(torch.equal(a[k], b[k]) for k in a)
