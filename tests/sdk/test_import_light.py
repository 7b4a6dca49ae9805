"""`import sdk` must stay light: no torch, transformers, vllm or web framework."""

import subprocess
import sys

HEAVY = ("torch", "transformers", "vllm", "fastapi", "starlette", "uvicorn")


def test_import_sdk_loads_no_heavy_module():
    code = (
        "import sys, sdk, sdk.backends, sdk.protocol, sdk.errors\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported by `import sdk`: {out.stdout.strip()}"
