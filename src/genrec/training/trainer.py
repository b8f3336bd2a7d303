"""The trainer every model shares: AdamW or Adafactor, warm-up + decay, early stopping, resumable checkpoints.

Per-epoch data order comes from a generator seeded by (seed, epoch) and the torch RNG
state is checkpointed, so `resume` after a kill gives the same weights as a run that was
never interrupted.
"""

from __future__ import annotations

import json
import logging
import math
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.dataset import SequenceDataset
from ..evaluation.evaluator import Evaluator
from ..models.base import Recommender
from .checkpoint import atomic_save, atomic_write_text, load_weights, rng_state, set_rng_state

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"  # latest epoch: everything needed to resume
BEST = "best.pt"  # weights of the best validation epoch


PRECISIONS = ("fp32", "bf16")
SCHEDULES = ("cosine", "linear", "constant")
SCHEDULE_HORIZONS = ("epochs", "time_limit")
OPTIMIZERS = ("adamw", "adafactor")


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 256
    # adamw, or adafactor: T5X's default optimizer (the TIGER paper trained with T5X). PyTorch's
    # Adafactor scales each step by the parameter's RMS and caps the rate at 1/sqrt(step), so a
    # constant lr of 0.01 is T5's schedule: 0.01 for the first 10k steps, then inverse-sqrt decay.
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: list[float] | None = None  # AdamW betas, default (0.9, 0.98)
    warmup_steps: int = 200
    schedule: str = "cosine"  # cosine | linear | constant (after warm-up), over all epochs
    # Where the decay ends. "epochs": after `epochs`. "time_limit": where the time limit
    # (time_limit_minutes, or the job's time_budget_minutes) will stop training, if that comes
    # first, re-estimated before every epoch from the mean wall time of the epochs so far
    # (validations included), so that a slower CPU ends its run annealed instead of cut off at
    # a high rate. The rate then depends on the machine's speed: runs are not bit-reproducible.
    schedule_horizon: str = "epochs"
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    # A step whose loss or gradient norm is not finite is skipped (no update), as AMP's loss
    # scaler does: under bf16 a rare batch can overflow while the weights are fine. This many
    # such steps in a row stop the run (0 = stop at the first): the weights have diverged.
    max_skipped_steps: int = 20
    # fp32, or bf16 autocast for the training forward pass (weights, optimizer and evaluation stay
    # fp32). bf16 is 1.4-1.7x faster on a CPU with AVX512-BF16 (docs/results.md).
    precision: str = "fp32"
    valid_metric: str = "ndcg@10"  # early stopping watches this validation metric
    # Cut-offs computed at each validation (default: eval.ks). A generative model decodes
    # max(ks) items, so [10] means a beam of 10 or beam_size, not 50: ~3x cheaper validations.
    valid_ks: list[int] | None = None
    patience: int = 10  # evaluations without improvement before stopping
    eval_every: int = 1  # epochs between validations
    valid_users: int = 0  # validate on a fixed random subset of this many users (0 = all)
    # Wall-clock budget (training + validation, resumed runs included); 0 = none. The epoch
    # that crosses it is validated and is the last one.
    time_limit_minutes: float = 0.0
    # Stop after this epoch of the `epochs`-long schedule (0 = run it all): a probe of a long
    # schedule's start, its learning rate where the full run would have it. The epoch is
    # validated; `--resume` without it continues the same schedule.
    stop_after_epoch: int = 0
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self):  # fail when the config is read, not after data preparation
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown train.precision {self.precision!r} ({', '.join(PRECISIONS)})")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown train.schedule {self.schedule!r} ({', '.join(SCHEDULES)})")
        if self.schedule_horizon not in SCHEDULE_HORIZONS:
            raise ValueError(f"unknown train.schedule_horizon {self.schedule_horizon!r} ({', '.join(SCHEDULE_HORIZONS)})")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown train.optimizer {self.optimizer!r} ({', '.join(OPTIMIZERS)})")
        if self.optimizer != "adamw" and self.betas is not None:
            raise ValueError(f"train.betas is an AdamW setting; train.optimizer is {self.optimizer!r}")
        name, _, k = self.valid_metric.partition("@")
        if name not in ("recall", "ndcg") or not k.isdigit():
            raise ValueError(f"train.valid_metric {self.valid_metric!r} is not recall@K or ndcg@K")
        if self.valid_ks is not None and self.valid_k not in self.valid_ks:
            raise ValueError(f"train.valid_metric {self.valid_metric!r} needs {k} in train.valid_ks {self.valid_ks}")
        if self.stop_after_epoch < 0:
            raise ValueError(f"train.stop_after_epoch must be >= 0 (0 = the whole schedule), got {self.stop_after_epoch}")

    @property
    def valid_k(self) -> int:
        """The cut-off K of `valid_metric`."""
        return int(self.valid_metric.partition("@")[2])


def autocast(device: torch.device, precision: str):
    """The context the training forward pass runs in for `train.precision`."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    if cfg.schedule == "linear":
        decay = 1.0 - progress
    else:  # cosine (TrainConfig checks the name)
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * decay


def epochs_within_time(epochs: int, epochs_done: int, elapsed_seconds: float, seconds_left: float) -> int:
    """How many of `epochs` the time limit will let run, `seconds_left` seconds after the
    `epochs_done` epochs that took `elapsed_seconds`: an epoch that starts before the limit runs."""
    if epochs_done == 0 or elapsed_seconds <= 0:
        return epochs
    return min(epochs, epochs_done + max(1, math.ceil(seconds_left * epochs_done / elapsed_seconds)))


def effective_lr(lr: float, step: int, cfg: TrainConfig) -> float:
    """The rate the optimizer applies at `step` (1-based) under the scheduler's `lr`: Adafactor
    caps it at 1/sqrt(step), so the log shows its inverse-sqrt decay."""
    return min(lr, step ** -0.5) if cfg.optimizer == "adafactor" and step > 0 else lr


def saved_optimizer_name(checkpoint: dict) -> str:
    """Which optimizer wrote `checkpoint`: its `optimizer_name`, or for checkpoints written
    before they named it (2026-12-04), the one whose hyper-parameters the state holds."""
    if "optimizer_name" in checkpoint:
        return checkpoint["optimizer_name"]
    groups = checkpoint["optimizer"].get("param_groups") or [{}]
    return "adamw" if "betas" in groups[0] else "adafactor"


def build_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer `cfg.optimizer` names (TrainConfig checks the name)."""
    if cfg.optimizer == "adafactor":
        return torch.optim.Adafactor(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    betas = tuple(cfg.betas) if cfg.betas else (0.9, 0.98)
    params = list(params)
    # One fused kernel instead of a loop over parameters: 1.4 ms instead of 7 per step on 2 CPU
    # cores for the fast TIGER's 47 tensors (docs/results.md); same update up to rounding.
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=betas, fused=fused)


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """`optimizer.load_state_dict`, keeping the implementation `build_optimizer` chose: PyTorch
    takes the saved groups' `fused` flag, so a checkpoint written before AdamW was fused would
    resume on the slower per-parameter loop. A fused AdamW wants its step counts as float32 on
    the parameters' device."""
    fused = [group.get("fused") for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, chosen in zip(optimizer.param_groups, fused):
        if "fused" not in group:
            continue  # an optimizer without the option (Adafactor)
        group["fused"] = chosen
        for param in group["params"] if chosen else ():
            param_state = optimizer.state.get(param, {})
            if "step" in param_state:
                param_state["step"] = param_state["step"].to(param.device, torch.float32)


def peak_memory_mb(device: torch.device) -> float:
    """Peak resident memory of this process (CPU) or peak allocated GPU memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Trainer:
    def __init__(self, model: Recommender, dataset: SequenceDataset, evaluator: Evaluator, cfg: TrainConfig,
                 out_dir: str | Path, device: torch.device, seed: int = 42,
                 job_budget: tuple[float, float] = (0.0, 0.0)):
        """`job_budget`: (seconds the whole job may take, 0 = no limit; seconds it spent before
        training). A resumed run keeps the seconds its first job spent, from the checkpoint."""
        self.model = model.to(device)
        self.job_budget_seconds, self.seconds_before_training = job_budget
        self.dataset = dataset
        self.evaluator = evaluator
        self.cfg = cfg
        # Cut-offs of each validation; TrainConfig checked valid_metric against valid_ks.
        self.valid_ks = tuple(cfg.valid_ks or evaluator.config.ks)
        if cfg.valid_k not in self.valid_ks:
            raise ValueError(f"train.valid_metric {cfg.valid_metric!r} needs {cfg.valid_k} in eval.ks {evaluator.config.ks}")
        self.out_dir = Path(out_dir)
        self.device = device
        self.seed = seed
        self.optimizer = build_optimizer(model.parameters(), cfg)
        self.steps_per_epoch = sum(1 for _ in model.training_batches(dataset, cfg.batch_size, self._epoch_rng(0)))
        self.schedule_epochs = cfg.epochs  # the decay's end, in epochs (train.schedule_horizon)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, self.steps_per_epoch * self.schedule_epochs, cfg))
        self.epoch = 0
        self.best_value = -math.inf
        self.best_epoch = -1
        self.bad_evals = 0
        self.skipped_in_a_row = 0  # non-finite steps since the last good one, across epochs
        self.history: list[dict] = []

    def _epoch_rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch])

    # -- checkpoints ---------------------------------------------------------------------
    def _state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "optimizer_name": self.cfg.optimizer, "scheduler": self.scheduler.state_dict(),
                "epoch": self.epoch, "best_value": self.best_value, "best_epoch": self.best_epoch,
                "bad_evals": self.bad_evals, "history": self.history,
                "skipped_in_a_row": self.skipped_in_a_row, "seconds_before_training": self.seconds_before_training,
                "rng": rng_state()}

    def resume(self) -> bool:
        """Loads the last checkpoint in out_dir, if any; returns whether one was found."""
        path = self.out_dir / CHECKPOINT
        if not path.is_file():
            return False
        state = torch.load(path, map_location=self.device, weights_only=False)
        load_weights(self.model, state["model"], path)
        saved = saved_optimizer_name(state)
        if saved != self.cfg.optimizer:
            raise ValueError(f"{path} was trained with train.optimizer={saved}, this config says "
                             f"{self.cfg.optimizer}: resume with the same optimizer, or start in a new --out")
        load_optimizer_state(self.optimizer, state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.best_value = state["epoch"], state["best_value"]
        self.best_epoch, self.bad_evals, self.history = state["best_epoch"], state["bad_evals"], state["history"]
        self.skipped_in_a_row = state.get("skipped_in_a_row", 0)  # absent from older checkpoints
        self.seconds_before_training = state.get("seconds_before_training", self.seconds_before_training)
        set_rng_state(state["rng"])
        log.info("resumed from %s after epoch %d (best %s=%.4f at epoch %d)", path, self.epoch,
                 self.cfg.valid_metric, self.best_value, self.best_epoch)
        return True

    def load_best(self) -> None:
        path = self.out_dir / BEST
        if path.is_file():
            load_weights(self.model, torch.load(path, map_location=self.device, weights_only=True), path)

    # -- the loop ------------------------------------------------------------------------
    def fit(self) -> dict:
        """Trains until `epochs` (or `stop_after_epoch`), early stopping or the time limit; leaves
        the best weights loaded."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        writer = self._tensorboard()
        log_path = self.out_dir / "log.jsonl"
        stopped = self.bad_evals >= self.cfg.patience
        # A run resumed after its budget was spent trains no further.
        out_of_time = self._time_limit_reached(self._elapsed_seconds()) is not None
        last_epoch = min(self.cfg.epochs, self.cfg.stop_after_epoch or self.cfg.epochs)
        while self.epoch < last_epoch and not stopped and not out_of_time:
            start = time.perf_counter()
            before = self._elapsed_seconds()
            self._fit_schedule_to_time(before)
            record = self._train_epoch()
            limit_reached = self._time_limit_reached(before + record["epoch_seconds"])
            out_of_time = limit_reached is not None
            if (self.epoch + 1) % self.cfg.eval_every == 0 or self.epoch + 1 == last_epoch or out_of_time:
                valid = self.evaluator.evaluate(self.model, "valid", self.device, progress=self.cfg.progress,
                                                max_users=self.cfg.valid_users, ks=self.valid_ks)
                record["valid"] = valid
                value = valid[self.cfg.valid_metric]
                if value > self.best_value:
                    self.best_value, self.best_epoch, self.bad_evals = value, self.epoch + 1, 0
                    atomic_save(self.model.state_dict(), self.out_dir / BEST)
                else:
                    self.bad_evals += 1
                stopped = self.bad_evals >= self.cfg.patience
            self.epoch += 1
            record["epoch"] = self.epoch
            record["elapsed_seconds"] = round(before + time.perf_counter() - start, 3)
            if self.cfg.schedule_horizon == "time_limit":
                record["schedule_epochs"] = self.schedule_epochs
            if not out_of_time and "valid" in record:  # its validation may have crossed the limit
                limit_reached = self._time_limit_reached(record["elapsed_seconds"])
                out_of_time = limit_reached is not None
            if out_of_time:
                log.info("%s reached after epoch %d", limit_reached, self.epoch)
            self.history.append(record)
            atomic_save(self._state(), self.out_dir / CHECKPOINT)
            # Rewritten from the checkpointed history, so a resumed run's log has no gaps or repeats.
            atomic_write_text("".join(json.dumps(r) + "\n" for r in self.history), log_path)
            self._report(record, writer)
        if writer is not None:
            writer.close()
        self.load_best()
        return {"best_epoch": self.best_epoch, f"best_valid_{self.cfg.valid_metric}": self.best_value,
                "epochs_run": self.epoch, "stopped_early": stopped and self.epoch < self.cfg.epochs,
                "stopped_by_time_limit": out_of_time}

    def _seconds_left(self, training_seconds: float) -> dict[str, float]:
        """Seconds left, after `training_seconds` of training, before each wall-clock limit that
        is set, by the limit's description."""
        left = {}
        if self.cfg.time_limit_minutes > 0:
            left[f"train.time_limit_minutes={self.cfg.time_limit_minutes:g}"] = (
                self.cfg.time_limit_minutes * 60 - training_seconds)
        if self.job_budget_seconds > 0:
            left[f"time_budget_minutes={self.job_budget_seconds / 60:g} (the job's "
                 f"{self.seconds_before_training / 60:.1f} minutes before training included)"] = (
                self.job_budget_seconds - self.seconds_before_training - training_seconds)
        return left

    def _fit_schedule_to_time(self, training_seconds: float) -> None:
        """Ends the decay where the time limit will stop training (train.schedule_horizon), from
        the checkpointed history only, so a resumed run computes what the uninterrupted one did."""
        if self.cfg.schedule_horizon != "time_limit":
            return
        left = self._seconds_left(training_seconds)
        if left:
            self.schedule_epochs = epochs_within_time(self.cfg.epochs, self.epoch, training_seconds, min(left.values()))

    def _time_limit_reached(self, training_seconds: float) -> str | None:
        """Which wall-clock limit `training_seconds` of training crossed, if any."""
        return next((name for name, left in self._seconds_left(training_seconds).items() if left <= 0), None)

    def _elapsed_seconds(self) -> float:
        # Checkpoints written before elapsed_seconds existed have no such field: count from 0.
        return self.history[-1].get("elapsed_seconds", 0.0) if self.history else 0.0

    def _train_epoch(self) -> dict:
        self.model.train()
        start = time.perf_counter()
        batches = list(self.model.training_batches(self.dataset, self.cfg.batch_size, self._epoch_rng(self.epoch)))
        total_loss, samples, skipped = 0.0, 0, 0
        bar = tqdm(batches, desc=f"epoch {self.epoch + 1}", leave=False, disable=None if self.cfg.progress else True)
        for batch in bar:
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            with autocast(self.device, self.cfg.precision):
                loss = self.model.calculate_loss(batch)
            self.optimizer.zero_grad(set_to_none=True)
            bad = None if torch.isfinite(loss) else f"loss {loss.item()}"
            if bad is None:
                loss.backward()
                max_norm = self.cfg.grad_clip if self.cfg.grad_clip > 0 else math.inf  # <= 0: measured, not clipped
                norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
                bad = None if torch.isfinite(norm) else f"gradient norm {norm.item()}"
            if bad is not None:
                skipped, self.skipped_in_a_row = skipped + 1, self.skipped_in_a_row + 1
                log.warning("epoch %d: %s, step skipped", self.epoch + 1, bad)
                if self.skipped_in_a_row > self.cfg.max_skipped_steps:
                    raise FloatingPointError(
                        f"{bad} at epoch {self.epoch + 1}, {self.skipped_in_a_row} steps in a row (train.max_skipped_steps="
                        f"{self.cfg.max_skipped_steps}): training diverged; lower train.lr"
                        + (" or use train.precision=fp32" if self.cfg.precision != "fp32" else ""))
                continue
            self.skipped_in_a_row = 0
            self.optimizer.step()
            self.scheduler.step()
            size = self.model.batch_samples(batch)
            total_loss += loss.item() * size
            samples += size
            bar.set_postfix(loss=f"{loss.item():.4f}")
        seconds = time.perf_counter() - start
        lr = effective_lr(self.scheduler.get_last_lr()[0], self.scheduler.last_epoch, self.cfg)
        return {"train_loss": total_loss / max(1, samples), "lr": lr,
                "epoch_seconds": round(seconds, 3), "samples_per_s": round(samples / max(seconds, 1e-9), 1),
                "skipped_steps": skipped,
                "peak_memory_mb": round(peak_memory_mb(self.device), 1)}

    def _tensorboard(self):
        if not self.cfg.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is a dependency, but keep training if it is broken
            log.warning("tensorboard is not importable; writing log.jsonl only")
            return None
        return SummaryWriter(str(self.out_dir / "tensorboard"))

    def _report(self, record: dict, writer) -> None:
        valid = record.get("valid", {})
        metric = self.cfg.valid_metric
        shown = f" valid {metric}={valid[metric]:.4f} (best {self.best_value:.4f} @ {self.best_epoch})" if valid else ""
        log.info("epoch %d: loss %.4f, %.1fs (%.0f samples/s)%s", record["epoch"], record["train_loss"],
                 record["epoch_seconds"], record["samples_per_s"], shown)
        if writer is not None:
            writer.add_scalar("train/loss", record["train_loss"], record["epoch"])
            writer.add_scalar("train/lr", record["lr"], record["epoch"])
            for key, value in valid.items():
                writer.add_scalar(f"valid/{key}", value, record["epoch"])
            writer.flush()
