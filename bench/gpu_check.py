"""The GPU check: bitrate's ``transformers`` backend beside plain ``generate`` and behind
``bitrate serve``, on the same weights, in one run that prints one ``key=value`` line.

On the GPU machine (``../shared/GPU.md`` says how to bring the dependencies), with the
defaults: a random-weight Llama of Qwen2.5-0.5B's shape (bench/random_llama.py, about 358M
parameters) built locally in bfloat16, greedy, 128 new tokens a stream:

- bitrate in-process at 1, 8 and 32 concurrent streams;
- plain ``generate`` at batch 1 and 32;
- ``bitrate serve`` at 32 streams;

then the line, e.g. ``bitrate_32=... generate_32=... bitrate_vs_generate_32=...
gateway_vs_inprocess_32=... same_answers=...``. ``--cb 8 32`` adds transformers'
continuous batching. Proven on CPU with a small model before a GPU session runs it:

    .venv/bin/python bench/gpu_check.py --device cpu --dtype float32 --shape cpu-17m --max-tokens 16
    python3 bench/gpu_check.py | tee "$OUT/gpu_check.txt"            # on the GPU machine

Same code as bench/batched_decode.py (the CPU acceptance run), with the GPU's sizes.
"""

from __future__ import annotations

import sys

from batched_decode import parser, run

GPU_DEFAULTS = {
    "shape": "qwen2.5-0.5b",
    "device": "cuda",
    "dtype": "bfloat16",
    "threads": 0,
    "max_tokens": 128,
    "batches": [1, 32],
    "streams": [1, 8, 32],
    "gateway": [32],
    "rounds": 2,
    "single_prompts": 1,
}


def main() -> int:
    run(parser(__doc__, **GPU_DEFAULTS).parse_args())
    return 0


if __name__ == "__main__":
    sys.exit(main())
