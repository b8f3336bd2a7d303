"""The whole job: data -> model -> training -> evaluation, with every artefact in one run folder.

Run folder layout: config.yaml (resolved), checkpoint.pt / best.pt, log.jsonl, tensorboard/,
metrics.json ({"valid": {...}, "test": {...}}), summary.json (timings, memory, the machine) and, for a model
over semantic IDs, tokenizer/ (the fitted tokenizer, so the folder reloads without the caches).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from .config import ConfigError, config_hash, deep_merge, from_dict, load_yaml_layers, parse_overrides
from .data import DataConfig, SequenceDataset, prepare_dataset
from .data.config import cache_root
from .data.presets import preset_fields
from .device import describe_machine, resolve_device
from .evaluation import EvalConfig, Evaluator
from .models import MODELS, Recommender, build_model
from .training import TrainConfig, Trainer
from .tokenizers import load_tokenizer
from .tokenizers.workflow import cached_tokenizer
from .training.checkpoint import atomic_save, atomic_write_text, load_weights, seed_everything
from .training.trainer import BEST, peak_memory_mb

log = logging.getLogger(__name__)
TOKENIZER_DIR = "tokenizer"  # the run's fitted tokenizer, inside the run folder


@dataclass
class ModelSpec:
    name: str = "sasrec"
    params: dict = field(default_factory=dict)


@dataclass
class BehaviourConfig:
    """Behaviour-aware semantic IDs (not in the TIGER or CoST papers; EAGER codes behaviour on
    its own): an ID model (`model`, trained by `train` on the training part, early-stopped on
    validation) runs first, and its item embeddings join the text embeddings the tokenizer
    clusters (`join_embeddings`), so codes group items bought by the same users as well as items
    described alike. `weight` = the behaviour part's norm beside the unit-norm text part; 0 =
    text only, as the papers. The ID model is cached by config hash and resumes if cut off."""

    weight: float = 0.0
    model: dict = field(default_factory=lambda: {"name": "sasrec"})  # name + parameters, as `model:`
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)  # its validation (early stopping) settings
    # The ID model's seed; None = the experiment's. Fix it to vary the generator's seed alone on
    # the same codes (the stage is cached by it).
    seed: int | None = None


@dataclass
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    behaviour: BehaviourConfig = field(default_factory=BehaviourConfig)
    seed: int = 42
    device: str = "auto"  # auto (cuda when available) | cpu | cuda | cuda:N
    threads: int | None = None  # torch CPU threads; None = torch's default
    # Names the default run folder, runs/<dataset>/<name>, so two configs of one model do not
    # overwrite each other's runs; load_experiment sets it to the YAML file's name. "" = model name.
    name: str = ""
    # Wall-clock budget of the whole `genrec run` job in minutes (0 = none): data, text
    # embeddings, behaviour model, tokenizer and the main model's training with its validations.
    # Training stops after the epoch that crosses it, as with train.time_limit_minutes (which
    # bounds the training alone), so a slower CPU's longer stages come out of the training's
    # time. The final evaluation comes after it: leave it room.
    time_budget_minutes: float = 0.0

    def to_yaml(self) -> str:
        raw = dataclasses.asdict(self)
        raw["model"] = {"name": self.model.name, **self.model.params}
        if not self.behaviour.weight:  # text-only runs: the section would only list unused defaults
            del raw["behaviour"]
        return yaml.safe_dump(raw, sort_keys=False)


def _section(value, where: str) -> dict:
    """A config section given as a mapping (or left out): `model: sasrec` names no section."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {value!r}")
    return dict(value)


def _model_spec(raw: dict, where: str) -> ModelSpec:
    """`{name: ..., **parameters}` -> ModelSpec with every parameter typed and defaulted."""
    model = _section(raw, where)
    name = model.pop("name", "sasrec")
    if name not in MODELS:
        raise ConfigError(f"unknown {where}.name '{name}'; known: {', '.join(MODELS.names())}")
    model_config = from_dict(MODELS.get(name).config_class, model, where)  # validate keys early
    return ModelSpec(name, dataclasses.asdict(model_config))


def experiment_from_dict(raw: dict) -> ExperimentConfig:
    """Builds the typed config. `data.preset` pulls in a named dataset; `model.name` picks the
    model and its remaining keys are that model's typed parameters (checked by build_model)."""
    raw = dict(raw)
    data = _section(raw.pop("data", None), "data")
    if "preset" in data:
        name = data.pop("preset")
        try:
            data = deep_merge(preset_fields(name), data)
        except KeyError as exc:
            raise ConfigError(f"data.preset: {exc.args[0]}") from None
    model = _model_spec(raw.pop("model", {}), "model")
    raw["data"] = data
    raw["model"] = {"name": model.name, "params": model.params}
    behaviour = _section(raw.get("behaviour"), "behaviour")
    if "model" in behaviour:
        spec = _model_spec(behaviour["model"], "behaviour.model")
        behaviour["model"] = {"name": spec.name, **spec.params}
    raw["behaviour"] = behaviour
    cfg = from_dict(ExperimentConfig, raw)
    if cfg.time_budget_minutes < 0:
        raise ConfigError(f"time_budget_minutes: must be >= 0 (0 = no budget), got {cfg.time_budget_minutes}")
    if cfg.behaviour.weight < 0:
        raise ConfigError(f"behaviour.weight: must be >= 0, got {cfg.behaviour.weight}")
    if cfg.behaviour.weight > 0 and "tokenizer" not in cfg.model.params:
        raise ConfigError(f"behaviour.weight: model '{cfg.model.name}' has no tokenizer for behaviour vectors to feed")
    behaviour_model = cfg.behaviour.model["name"]
    if cfg.behaviour.weight > 0 and not MODELS.get(behaviour_model).has_item_embeddings():
        usable = [n for n in MODELS.names() if MODELS.get(n).has_item_embeddings()]
        raise ConfigError(f"behaviour.model: '{behaviour_model}' has no per-item embedding table to give behaviour "
                          f"vectors; use one of {', '.join(usable)}")
    return cfg


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    raw = deep_merge({"name": Path(path).stem}, load_yaml_layers(path))
    return experiment_from_dict(deep_merge(raw, parse_overrides(overrides)))


def default_run_dir(cfg: ExperimentConfig) -> Path:
    return Path("runs") / cfg.data.name / (cfg.name or cfg.model.name)


@dataclass
class Run:
    """A prepared experiment: its config, data, model and where its artefacts go."""

    config: ExperimentConfig
    dataset: SequenceDataset
    model: Recommender
    out_dir: Path
    device: torch.device
    stages: dict = field(default_factory=dict)  # what building the model took (behaviour stage)

    @property
    def evaluator(self) -> Evaluator:
        return Evaluator(self.config.eval, self.dataset)


def setup(cfg: ExperimentConfig, out_dir: str | Path | None, dataset: SequenceDataset | None = None) -> Run:
    """Seeds, device, data (`dataset` when the caller already loaded cfg.data) and the model."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    if device.type == "cuda":  # TF32 tensor cores for fp32 matrix products (Ampere and newer)
        torch.set_float32_matmul_precision("high")
    if dataset is None:
        dataset = prepare_dataset(cfg.data)
    model, stages = build_experiment_model(cfg, dataset)
    out = Path(out_dir) if out_dir else default_run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg.to_yaml(), out / "config.yaml")
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is not None:
        tokenizer.save(out / TOKENIZER_DIR)
    return Run(cfg, dataset, model, out, device, stages)


def build_experiment_model(cfg: ExperimentConfig, dataset: SequenceDataset) -> tuple[Recommender, dict]:
    """The experiment's model; with behaviour.weight > 0 its tokenizer is fitted on text +
    behaviour vectors first (then the seed is set again, so the model starts as without them)."""
    if not cfg.behaviour.weight:
        return build_model(cfg.model.name, cfg.model.params, dataset), {}
    start = time.perf_counter()
    vectors, stage = behaviour_vectors(cfg, dataset)
    params = cfg.model.params
    tokenizer = cached_tokenizer(dataset, params["tokenizer"], params["tokenizer_params"], extra=vectors,
                                 extra_key=stage["key"], extra_weight=cfg.behaviour.weight)
    stage["seconds"] = round(time.perf_counter() - start, 3)
    seed_everything(cfg.seed)
    return build_model(cfg.model.name, params, dataset, tokenizer=tokenizer), {"behaviour": stage}


def behaviour_vectors(cfg: ExperimentConfig, dataset: SequenceDataset) -> tuple[np.ndarray, dict]:
    """(num_items x d) item embeddings of the behaviour ID model (row r = item r + 1), trained on
    the first call and cached under cache_root()/behaviour/ by dataset and config hash."""
    b = cfg.behaviour
    seed = cfg.seed if b.seed is None else b.seed
    sub = ExperimentConfig(data=cfg.data, model=_model_spec(b.model, "behaviour.model"), train=b.train,
                           eval=b.eval, seed=seed, device=cfg.device, threads=cfg.threads, name="behaviour")
    key = config_hash({"dataset": dataset.fingerprint, "model": sub.model, "train": b.train, "eval": b.eval,
                       "seed": seed})
    folder = cache_root() / "behaviour" / f"{dataset.name}-{key}"
    path = folder / "item_embeddings.npy"
    stage = {"key": key, "folder": str(folder), "model": sub.model.name, "cache_hit": path.is_file()}
    if not path.is_file():
        log.info("behaviour stage: training %s for the tokenizer's behaviour vectors in %s", sub.model.name, folder)
        run = setup(sub, folder, dataset)  # sub.data is cfg.data: the same dataset
        stage["train"] = train(run, resume=True)
        atomic_save(run.model.item_embeddings()[1:].float().cpu().numpy(), path)
    return np.load(path), stage


def train(run: Run, resume: bool = False, seconds_before: float = 0.0) -> dict:
    """Fits the model (gradient training, or counting for non-trainable models). `seconds_before`:
    what the job spent before training, counted against the config's `time_budget_minutes`."""
    start = time.perf_counter()
    if not run.model.trainable:
        run.model.fit_counts(run.dataset)
        torch.save(run.model.state_dict(), run.out_dir / BEST)
        return {"train_seconds": round(time.perf_counter() - start, 3)}
    trainer = Trainer(run.model, run.dataset, run.evaluator, run.config.train, run.out_dir, run.device,
                      run.config.seed, job_budget=(run.config.time_budget_minutes * 60, seconds_before))
    if resume and not trainer.resume():
        log.info("no checkpoint in %s: starting from scratch", run.out_dir)
    summary = trainer.fit()
    epochs = [h["epoch_seconds"] for h in trainer.history]
    summary.update({"train_seconds": round(time.perf_counter() - start, 3),
                    "seconds_before_training": round(seconds_before, 3),
                    "mean_epoch_seconds": round(sum(epochs) / max(1, len(epochs)), 3),
                    "samples_per_s": trainer.history[-1]["samples_per_s"] if trainer.history else None})
    return summary


def evaluate(run: Run, splits: tuple[str, ...] = ("valid", "test")) -> dict:
    progress = run.config.train.progress
    return {split: run.evaluator.evaluate(run.model, split, run.device, progress=progress) for split in splits}


def run_experiment(cfg: ExperimentConfig, out_dir: str | Path | None = None, resume: bool = False) -> dict:
    """The main job; returns {"valid": ..., "test": ...} and writes metrics.json + summary.json."""
    start = time.perf_counter()
    run = setup(cfg, out_dir)
    summary = train(run, resume=resume, seconds_before=time.perf_counter() - start)
    metrics = evaluate(run)
    summary.update({**run.stages, "dataset": run.dataset.stats(), "machine": describe_machine(run.device),
                    "peak_memory_mb": round(peak_memory_mb(run.device), 1),
                    "model_parameters": sum(p.numel() for p in run.model.parameters())})
    atomic_write_text(json.dumps(metrics, indent=2), run.out_dir / "metrics.json")
    atomic_write_text(json.dumps(summary, indent=2), run.out_dir / "summary.json")
    return metrics


def load_run(run_dir: str | Path, device: str | None = None) -> Run:
    """Rebuilds a finished run (config, processed data, best weights) from its folder."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a genrec run folder (no config.yaml)")
    cfg = experiment_from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    if device:
        cfg.device = device
    run = Run(cfg, prepare_dataset(cfg.data), None, run_dir, resolve_device(cfg.device))  # type: ignore[arg-type]
    if (run_dir / TOKENIZER_DIR / "tokenizer.json").is_file():  # the codes it was trained on, no cache needed
        tokenizer = load_tokenizer(run_dir / TOKENIZER_DIR)
        run.model = build_model(cfg.model.name, cfg.model.params, run.dataset, tokenizer=tokenizer)
    else:  # folders written before the run kept its tokenizer: rebuilt from the caches
        run.model, run.stages = build_experiment_model(cfg, run.dataset)
    run.model.to(run.device)
    weights = run_dir / BEST
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found: train the model first (genrec train / genrec run)")
    load_weights(run.model, torch.load(weights, map_location=run.device, weights_only=True), weights)
    run.model.eval()
    return run


def recommend(run: Run, history_item_ids: list[str], k: int = 10, exclude_seen: bool = False) -> list[dict]:
    """Top-k items for one user given their history (raw item ids, oldest first).

    exclude_seen drops items already in the history (the evaluation protocol keeps them).
    """
    index = run.dataset.item_index()
    unknown = [i for i in history_item_ids if i not in index]
    if unknown:
        raise KeyError(f"unknown item id(s) {', '.join(map(repr, unknown[:5]))} "
                       f"(not in the processed '{run.dataset.name}' catalogue)")
    seen = [index[i] for i in history_item_ids]
    items = seen[-run.model.max_history:]
    batch = {"history": torch.tensor([items or [0]], device=run.device),
             "users": torch.zeros(1, dtype=torch.long, device=run.device)}
    hidden = set(seen) if exclude_seen else set()
    with torch.no_grad():
        if run.model.output == "scores":
            scores = run.model.full_sort_predict(batch)[0].float()
            scores[0] = -torch.inf
            if hidden:
                scores[list(hidden)] = -torch.inf
            top = scores.topk(min(k, run.dataset.num_items))
            pairs = list(zip(top.indices.tolist(), top.values.tolist()))
        else:
            ranked = run.model.recommend(batch, min(k + len(hidden), run.dataset.num_items))[0].tolist()
            pairs = [(i, None) for i in ranked if i not in hidden][:k]
    pairs = [(i, score) for i, score in pairs if i > 0]  # 0 = padding, -1 = invalid ID
    semantic_id = getattr(run.model, "semantic_id", None)  # generative models: the item's codes
    recs = []
    for rank, (i, score) in enumerate(pairs):
        rec = {"rank": rank + 1, "item_id": run.dataset.item_ids[i], "title": run.dataset.item_titles[i], "score": score}
        if semantic_id is not None:
            rec["semantic_id"] = semantic_id(i)
        recs.append(rec)
    return recs


def format_metrics_table(rows: dict[str, dict], split: str = "test", ks: list[int] | None = None) -> str:
    """A plain-text table: one row per run name, Recall@K and NDCG@K columns."""
    ks = ks or [5, 10, 20, 50]
    columns = [f"{m}@{k}" for k in ks for m in ("recall", "ndcg")]
    header = f"{'model':<14}" + "".join(f"{c:>11}" for c in columns)
    lines = [f"{split} (full ranking, {next(iter(rows.values()))[split].get('users', '?')} users)", header,
             "-" * len(header)]
    for name, metrics in rows.items():
        lines.append(f"{name:<14}" + "".join(f"{metrics[split].get(c, float('nan')):>11.4f}" for c in columns))
    return "\n".join(lines)
