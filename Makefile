# Two commands for a fresh machine: `make demo` (main job, offline) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test clean

install: $(STAMP)

# CPU build of torch first when there is no CUDA: an unpinned torch pulls a multi-GB CUDA build.
# Where pip's index serves the CUDA build under the plain version (PyPI on Linux), point it at
# PyTorch's CPU index: make install TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/python -m pip install -q $(TORCH_PIP_ARGS) "torch==2.13.0"; fi
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: install
	$(BIN)/genrec demo

test: install
	$(BIN)/python -m pytest tests

clean:
	rm -rf $(VENV) runs
