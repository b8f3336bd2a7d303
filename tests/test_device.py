import pytest
import torch

from genrec.config import ConfigError
from genrec.device import describe_cpu, describe_machine, resolve_device
from genrec.pipeline import experiment_from_dict, setup
from genrec.tokenizers import build_tokenizer, load_tokenizer

RQVAE = {"codebook_sizes": [4, 4], "latent_dim": 4, "hidden_dims": [16], "steps": 20, "batch_size": 32,
         "kmeans_niter": 5}


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_is_cuda_only_when_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device(None) == resolve_device("") == torch.device("cpu")


def test_cuda_without_cuda_is_a_config_error_unless_falling_back(no_cuda):
    with pytest.raises(ConfigError, match="'cuda:1' requested but CUDA is not available"):
        resolve_device("cuda:1")
    assert resolve_device("cuda", fallback_to_cpu=True) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_a_name_torch_does_not_know_is_a_config_error():
    with pytest.raises(ConfigError, match="'gpu' is not a torch device"):
        resolve_device("gpu")


def test_a_run_and_an_rqvae_fit_on_cuda_without_cuda_stop_with_a_config_error(no_cuda, tmp_path):
    cfg = experiment_from_dict({"data": {"preset": "synthetic"}, "model": {"name": "popularity"}, "device": "cuda"})
    with pytest.raises(ConfigError, match="CUDA is not available"):
        setup(cfg, tmp_path)
    tok = build_tokenizer("rqvae", {**RQVAE, "device": "cuda"})
    with pytest.raises(ConfigError, match="CUDA is not available"):
        tok.fit(torch.randn(64, 8).numpy())


def test_a_gpu_fitted_rqvae_loads_on_the_cpu(no_cuda, tmp_path):
    tok = build_tokenizer("rqvae", {**RQVAE, "device": "cpu"})
    x = torch.randn(64, 8).numpy()
    tok.fit(x)
    tok.config.device = "cuda"  # as if it had been fitted on a GPU machine
    tok.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert next(loaded.model.parameters()).device.type == "cpu"
    assert (loaded.encode(x) == tok.encode(x)).all()


def test_describe_cpu_reads_the_first_processor_and_falls_back(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
                    "model name\t: AMD EPYC\nstepping\t: 1\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\n"
                    "processor\t: 1\nmodel name\t: other\n")
    assert describe_cpu(info) == {"cpu": "AMD EPYC", "cpu_id": "family 25 model 17 stepping 1",
                                  "cpu_flags": ["avx2", "avx512f", "avx512_bf16"]}
    absent = describe_cpu(tmp_path / "absent")
    assert absent["cpu"] and absent["cpu_id"] is None and absent["cpu_flags"] is None  # platform's name


def test_describe_machine_names_the_gpu_only_on_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert describe_machine(torch.device("cuda"))["gpu"] == "NVIDIA H200"
    machine = describe_machine(torch.device("cpu"))
    assert machine["device"] == "cpu" and machine["gpu"] is None
    assert machine["torch"] == torch.__version__ and machine["torch_threads"] == torch.get_num_threads()
    assert "device" not in describe_machine()
