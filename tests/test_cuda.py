"""CUDA behaviour: the same results as on the CPU where the code takes a device-specific path.
Skipped on machines without CUDA (CI has none); run on a GPU machine with `pytest tests/test_cuda.py`."""

import json

import numpy as np
import pytest
import torch

import genrec.models.tiger  # noqa: F401  (registers "tiger")
from genrec.data import prepare_dataset, preset
from genrec.models.layers import Dropout
from genrec.models.tiger import TIGER, TIGERConfig
from genrec.pipeline import experiment_from_dict, load_run, run_experiment
from genrec.tokenizers import build_tokenizer
from genrec.training.trainer import TrainConfig, build_optimizer, load_optimizer_state

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def exact_fp32_matmuls():
    """TF32 (which a run turns on for CUDA) rounds fp32 products to ~1e-3: compare in full fp32."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(before)


@pytest.fixture(scope="module")
def small():
    return prepare_dataset(preset("synthetic", options={"num_items": 120, "num_users": 200}), cache=False)


@pytest.fixture(scope="module")
def tokenizer(small):
    """Random codes need no faiss (the GPU machine may not have it); two levels + a dedup digit."""
    tok = build_tokenizer("random", {"codebook_sizes": [8, 8], "dedup": "always"})
    tok.fit(np.random.default_rng(0).normal(size=(small.num_items, 16)).astype(np.float32))
    return tok


def tiny_tiger(dataset, tokenizer, **kw):
    torch.manual_seed(0)
    config = {"d_model": 32, "encoder_layers": 1, "decoder_layers": 2, "num_heads": 2, "head_dim": 16,
              "ffn_size": 64, "dropout": 0.0, "max_history": 6, "beam_size": 10, **kw}
    return TIGER(TIGERConfig(**config), dataset, tokenizer=tokenizer)


def test_fused_adamw_on_cuda_matches_the_per_parameter_loop():
    torch.manual_seed(0)
    start = [torch.randn(33, 17), torch.randn(17)]
    fused_params = [p.clone().to(CUDA).requires_grad_() for p in start]
    loop_params = [p.clone().to(CUDA).requires_grad_() for p in start]
    cfg = TrainConfig(lr=1e-2, weight_decay=0.1)
    fused = build_optimizer(fused_params, cfg)
    assert fused.param_groups[0]["fused"]
    loop = torch.optim.AdamW(loop_params, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.98), foreach=False)
    for _ in range(5):
        grads = [torch.randn_like(p) for p in fused_params]
        for params, optimizer in ((fused_params, fused), (loop_params, loop)):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            optimizer.step()
    for a, b in zip(fused_params, loop_params):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_cpu_optimizer_state_resumes_fused_on_cuda():
    """A checkpoint written on the CPU by the per-parameter AdamW continues on the GPU fused, with
    its step counts moved to the GPU (the fused kernel refuses CPU step tensors)."""
    cpu_param = torch.nn.Parameter(torch.ones(4))
    cpu_opt = torch.optim.AdamW([cpu_param], lr=0.1, foreach=False)
    cpu_param.grad = torch.ones(4)
    cpu_opt.step()
    gpu_param = torch.nn.Parameter(cpu_param.detach().to(CUDA))
    gpu_opt = build_optimizer([gpu_param], TrainConfig(lr=0.1))
    load_optimizer_state(gpu_opt, cpu_opt.state_dict())
    assert gpu_opt.param_groups[0]["fused"]
    step = gpu_opt.state[gpu_param]["step"]
    assert step.device == gpu_param.device and step.dtype == torch.float32 and step.item() == 1
    gpu_param.grad = torch.ones(4, device=CUDA)
    gpu_opt.step()
    assert gpu_opt.state[gpu_param]["step"].item() == 2 and torch.isfinite(gpu_param).all()


def test_dropout_on_cuda_drops_p_and_rescales():
    layer = Dropout(0.1).train()
    x = torch.ones(1_000_000, device=CUDA)
    y = layer(x)
    assert y.device.type == "cuda"
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.9) < 0.003  # sd of the share is 3e-4
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.9))
    assert torch.equal(layer.eval()(x), x)


@pytest.mark.parametrize("pool", [False, True])
def test_tiger_beam_search_on_cuda_returns_the_cpu_lists(small, tokenizer, pool):
    model = tiny_tiger(small, tokenizer, pool_history_codes=pool).eval()
    with torch.no_grad():  # untrained weights are nearly uniform: sharpen them so ties are unlikely
        model.token_embedding.weight.mul_(4.0)
    rows = [np.pad(seq[-6:], (6 - len(seq[-6:]), 0)) for seq in (small.sequence(u)[:-2] for u in range(32))]
    history = torch.from_numpy(np.stack(rows))
    items, scores = model.beam_search(history, 10)
    model.to(CUDA)
    gpu_items, gpu_scores = model.beam_search(history.to(CUDA), 10)
    assert gpu_items.device.type == CUDA.type
    assert torch.equal(gpu_items.cpu(), items)
    torch.testing.assert_close(gpu_scores.cpu(), scores, rtol=0, atol=1e-4)


def test_tiger_trains_in_bf16_on_cuda(small, tokenizer):
    """Loss falls under CUDA bf16 autocast with the trainer's fused AdamW and dropout on."""
    model = tiny_tiger(small, tokenizer, dropout=0.1, pool_history_codes=True).to(CUDA).train()
    optimizer = build_optimizer(model.parameters(), TrainConfig(lr=3e-3))
    batch = next(iter(model.training_batches(small, 64, np.random.default_rng(0))))
    batch = {k: v.to(CUDA) if torch.is_tensor(v) else v for k, v in batch.items()}
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model.calculate_loss(batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < losses[0] * 0.8


def test_a_run_on_cuda_records_the_gpu_and_reloads_on_the_cpu(tmp_path):
    cfg = experiment_from_dict({
        "data": {"preset": "synthetic", "options": {"num_items": 100, "num_users": 150}},
        "model": {"name": "sasrec", "hidden_size": 16, "num_layers": 1, "num_heads": 1, "ffn_size": 32,
                  "dropout": 0.3, "max_history": 10},
        "train": {"epochs": 2, "batch_size": 32, "warmup_steps": 5, "progress": False, "tensorboard": False,
                  "precision": "bf16"},
        "eval": {"ks": [5, 10]},
        "device": "cuda",
    })
    metrics = run_experiment(cfg, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["machine"]["device"].startswith("cuda") and summary["machine"]["gpu"]
    assert 0 <= metrics["test"]["ndcg@10"] <= 1
    run = load_run(tmp_path, device="cpu")
    assert next(run.model.parameters()).device.type == "cpu"
    assert run.evaluator.evaluate(run.model, "test")["ndcg@10"] == pytest.approx(metrics["test"]["ndcg@10"], abs=1e-3)
