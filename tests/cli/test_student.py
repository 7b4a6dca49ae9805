"""`bitrate student serve`: the vLLM command it runs, and its errors without vllm."""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bitrate_cli.student import student_app

runner = CliRunner()


def test_print_command_runs_vllm_module_with_its_generation_defaults(tmp_path: Path):
    result = runner.invoke(
        student_app,
        [
            "serve",
            "--model",
            str(tmp_path),
            "--port",
            "8123",
            "--served-model-name",
            "student",
            "--print-command",
            "--max-model-len",
            "512",
        ],
    )
    assert result.exit_code == 0, result.output
    argv = shlex.split(result.output.strip())
    assert argv[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert argv[argv.index("--model") + 1] == str(tmp_path)
    assert argv[argv.index("--generation-config") + 1] == "vllm"
    assert argv[argv.index("--port") + 1] == "8123"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--served-model-name") + 1] == "student"
    assert argv[-2:] == ["--max-model-len", "512"], "extra arguments are passed to vLLM"


def test_missing_model_directory_is_a_usage_error(tmp_path: Path):
    result = runner.invoke(student_app, ["serve", "--model", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no model directory" in result.output


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_without_vllm_says_what_to_install(tmp_path: Path):
    result = runner.invoke(student_app, ["serve", "--model", str(tmp_path)])
    assert result.exit_code == 2
    assert "pip install 'bitrate[gpu]'" in result.output
