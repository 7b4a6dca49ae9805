#!/usr/bin/env bash
# GPU check of the two local backends on one model: greedy answers of the vllm and transformers
# backends must agree, and both report tokens/s. Installs nothing: run it with a venv that already
# has this project, torch with CUDA and vllm.
#
#   bench/gpu_check.sh [VENV]          (default: .venv)
#
# Model: the shipped student (sdk/embedded/student) when it exists, else the tiny test model, built
# into a temporary directory. Last line: `gpu_check key=value ...`; exit 1 when answers disagree.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv}/bin/python"
MODEL=sdk/embedded/student
TMP=""
trap 'if [ -n "$TMP" ]; then rm -rf "$TMP"; fi' EXIT
if [ ! -f "$MODEL/config.json" ]; then
    TMP="$(mktemp -d)"
    MODEL="$TMP/tiny"
    "$PY" -m tests.support.tiny_model "$MODEL" >/dev/null
fi
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device visible to torch")'

"$PY" - "$MODEL" <<'EOF'
import asyncio
import sys
import time

from sdk.backends import TransformersConfig, VLLMConfig, make_backend
from sdk.protocol import ChatRequest

MODEL = sys.argv[1]
PROMPTS = ["hi", "What is 2+2?", "Tell me a story.", "Name three colours.", "Translate 'cat' to French."]


def req(prompt: str) -> ChatRequest:
    return ChatRequest(model="m", messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=64)


async def measure(backend, concurrency: int) -> tuple[list[str], float]:
    answers = [(await backend.complete(req(p))).choices[0].message.content for p in PROMPTS]
    start = time.perf_counter()
    outs = await asyncio.gather(*(backend.complete(req(PROMPTS[i % len(PROMPTS)])) for i in range(concurrency)))
    elapsed = time.perf_counter() - start
    return answers, sum(o.usage.completion_tokens for o in outs) / elapsed


async def main() -> int:
    hf = make_backend("hf", TransformersConfig(backend="transformers", model=MODEL, device="cuda"))
    try:
        hf_answers, hf_tps = await measure(hf, 16)
    finally:
        await hf.close()
    vllm = make_backend(
        "vllm", VLLMConfig(backend="vllm", model=MODEL, dtype="float32", gpu_memory_utilization=0.3)
    )
    try:
        vllm_answers, vllm_tps = await measure(vllm, 128)
    finally:
        await vllm.close()
    agree = 0
    for prompt, a, b in zip(PROMPTS, hf_answers, vllm_answers, strict=True):
        agree += a == b
        print(f"{'same' if a == b else 'DIFF'}  {prompt!r}\n  hf:   {a!r}\n  vllm: {b!r}")
    print(f"gpu_check model={MODEL} agree={agree}/{len(PROMPTS)} hf_tok_s={hf_tps:.0f} vllm_tok_s={vllm_tps:.0f}")
    return 0 if agree == len(PROMPTS) else 1


sys.exit(asyncio.run(main()))
EOF
