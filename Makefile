# The two commands: `make demo` and `make test`. Both create .venv and install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install check-vllm-cpu train clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# No CUDA here: take the CPU build of torch that lies on disk before anything asks for torch.
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install -q torch==2.13.0; fi
	$(BIN)/pip install -q -e '.[local,dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check sdk gateway profiles tests bench examples bitrate_cli.py
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/bitrate demo

lint: $(STAMP)
	$(BIN)/ruff check sdk gateway profiles tests bench examples bitrate_cli.py
	$(BIN)/ruff format --check sdk gateway profiles tests bench examples bitrate_cli.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
