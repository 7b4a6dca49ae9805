"""A bad file never gets a traceback: ``bitrate policy check`` and ``bitrate serve`` as real processes.

Each case writes a policy (and its profile) that cannot serve. ``policy check`` must find what
``serve`` would refuse; both print one ``error:`` line naming the file (with the line and key where
there is one) and exit 2. ``policy check`` lists every problem at once; ``serve`` names the first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sdk.profile import ModelIdentity
from tests.sdk.test_profile_checks import MEASURED, OTHER_PAIR, POLICY
from tests.support.net import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
UNSET = "BITRATE_TEST_UNSET_UPSTREAM_KEY"
PASTED_KEY = "sk-proj-Zq81nVtY3xw7LmKd0Pq2RsT9uVb4WcX6"
ANONYMOUS = MEASURED.model_copy(
    update={"student": ModelIdentity(name="small"), "frontier": ModelIdentity(name="big")}
)
"""The measured profile without the model ids (so any models match it)."""


def bitrate(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m bitrate_cli ARGS`` in ``cwd``, with no key variable set unless ``env`` sets it."""
    clean = {k: v for k, v in os.environ.items() if k not in (UNSET, "OPENAI_API_KEY", "BITRATE_API_KEYS")}
    command = [sys.executable, "-m", "bitrate_cli", *args]
    return subprocess.run(
        command, cwd=cwd, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=60
    )


def serve(policy: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return bitrate("serve", "--policy", policy, "--port", str(free_port()), "--log-level", "warning", cwd=cwd)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line of a refused command (exit 2, nothing else on stderr)."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# ---------------------------------------------------------------- what each case writes


def _policy(tmp: Path, text: str | bytes | None = None) -> None:
    text = POLICY.format(extra="") if text is None else text
    path = tmp / "policy.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def _profile(tmp: Path, text: str | bytes | None = None) -> None:
    text = MEASURED.model_dump_json() if text is None else text
    path = tmp / "profile.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def _nan_profile() -> str:
    data = json.loads(MEASURED.model_dump_json())
    data["categories"]["hard"]["loss"] = float("nan")
    return json.dumps(data)


def _with_model(line: str) -> str:
    """The policy with the ``big`` model's line replaced."""
    return POLICY.format(extra="").replace(
        '  big: {backend: openai, base_url: "http://127.0.0.1:9/v1", model: big-model}', line
    )


def _with_key_variable(value: str) -> str:
    """The policy with ``api_key_env: VALUE`` on the ``big`` model."""
    return POLICY.format(extra="").replace("model: big-model}", f"model: big-model, api_key_env: {value}}}")


def _missing_profile(tmp: Path) -> None:
    _policy(tmp)


def _corrupt_profile(tmp: Path) -> None:
    _policy(tmp)
    _profile(tmp, '{\n  "schema_version": 1,\n  oops\n}')


def _binary_profile(tmp: Path) -> None:
    _policy(tmp)
    _profile(tmp, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)


def _non_utf8_profile(tmp: Path) -> None:
    _policy(tmp)
    _profile(tmp, MEASURED.model_dump_json(indent=2).replace('"t"', '"caf\xe9"').encode("latin-1"))


def _nan_in_profile(tmp: Path) -> None:
    _policy(tmp)
    _profile(tmp, _nan_profile())


def _other_models_profile(tmp: Path) -> None:
    _policy(tmp)
    _profile(tmp, OTHER_PAIR.model_dump_json())


def _unset_key_variable(tmp: Path) -> None:
    _policy(tmp, _with_key_variable(UNSET))
    _profile(tmp)


def _base_url_not_http(tmp: Path) -> None:
    _policy(tmp, _with_model('  big: {backend: openai, base_url: "ftp://127.0.0.1:9/v1", model: big-model}'))
    _profile(tmp)


def _non_utf8_policy(tmp: Path) -> None:
    _policy(tmp, ("version: 1\n# caf\xe9 au lait\n" + POLICY.format(extra="")[11:]).encode("latin-1"))
    _profile(tmp)


def _binary_policy(tmp: Path) -> None:
    _policy(tmp, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")


def _control_character_in_policy(tmp: Path) -> None:
    _policy(tmp, POLICY.format(extra="").replace("routes:", "routes:\x00", 1))
    _profile(tmp)


def _missing_model_directory(tmp: Path) -> None:
    _policy(tmp, _with_model(f"  big: {{backend: transformers, model: '{tmp / 'missing-model'}'}}"))
    _profile(tmp, ANONYMOUS.model_dump_json())


CASES: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    # case: (write the files, what the error line names)
    "missing profile": (_missing_profile, ("profile.json", "cannot read profile")),
    "corrupt profile": (_corrupt_profile, ("profile.json:3", "not valid JSON")),
    "binary profile": (_binary_profile, ("profile.json:1", "not UTF-8")),
    "profile not UTF-8": (_non_utf8_profile, ("profile.json:", "not UTF-8")),
    "NaN in the profile": (_nan_in_profile, ("profile.json", "key 'categories.hard.loss'", "finite")),
    "profile of other models": (_other_models_profile, ("policy.yaml:9", "key 'routes.auto.profile'")),
    "unset key variable": (_unset_key_variable, ("policy.yaml:3", "key 'models.big.api_key_env'", UNSET)),
    "base_url not http(s)": (_base_url_not_http, ("policy.yaml:3", "key 'models.big.base_url'", "http")),
    "policy not UTF-8": (_non_utf8_policy, ("policy.yaml:2", "not UTF-8")),
    "binary policy": (_binary_policy, ("policy.yaml:", "not UTF-8")),
    "control character in the policy": (_control_character_in_policy, ("policy.yaml:5", "invalid YAML")),
    "missing model directory": (_missing_model_directory, ("policy.yaml:3", "key 'models.big.model'")),
}


@pytest.mark.parametrize("case", CASES)
def test_policy_check_refuses_in_one_line(tmp_path: Path, case: str):
    write, named = CASES[case]
    write(tmp_path)
    result = bitrate("policy", "check", "policy.yaml", cwd=tmp_path)
    line = one_error_line(result)
    assert result.stdout == ""
    for part in named:
        assert part in line, line


@pytest.mark.parametrize("case", CASES)
def test_serve_refuses_in_one_line_before_serving(tmp_path: Path, case: str):
    write, named = CASES[case]
    write(tmp_path)
    line = one_error_line(serve("policy.yaml", tmp_path))
    for part in named:
        assert part in line, line


def test_a_missing_policy_file_is_one_line(tmp_path: Path):
    for result in (serve("absent.yaml", tmp_path), bitrate("policy", "check", "absent.yaml", cwd=tmp_path)):
        assert "absent.yaml: cannot read policy" in one_error_line(result)


# ---------------------------------------------------------------- several problems, keys, engine start


def test_policy_check_lists_every_problem_and_serve_counts_them(tmp_path: Path):
    text = _with_model(f"  big: {{backend: transformers, model: '{tmp_path / 'missing-model'}'}}")
    text = text.replace("model: small-model}", f"model: small-model, api_key_env: {UNSET}}}")
    _policy(tmp_path, text + "server: {api_keys_env: BITRATE_API_KEYS}\n")
    result = bitrate("policy", "check", "policy.yaml", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        f"{tmp_path / 'profile.json'}",
        "policy.yaml:3",
        "policy.yaml:4",
        "policy.yaml:11",
    ], lines
    assert all(line.startswith("error: ") for line in lines)
    assert "(and 3 more: 'bitrate policy check' lists all)" in one_error_line(serve("policy.yaml", tmp_path))


def test_policy_check_lists_every_mistake_in_the_file_itself(tmp_path: Path):
    text = _with_key_variable(f'"{PASTED_KEY}"').replace(
        '"http://127.0.0.1:9/v1", model: big-model', '"ftp://h", model: big-model'
    )
    _policy(tmp_path, text.replace("student: small", "student: small\n    colour: red"))
    result = bitrate("policy", "check", "policy.yaml", cwd=tmp_path)
    assert result.returncode == 2 and PASTED_KEY not in result.stderr
    assert [line.split(": key ")[1].split(":")[0] for line in result.stderr.strip().splitlines()] == [
        "'routes.auto.colour'",
        "'models.big.base_url'",
        "'models.big.api_key_env'",
    ], result.stderr


@pytest.mark.parametrize(
    "key", [PASTED_KEY, "AIzaSyD3kF9vQ2mX7pL0rT5wY8uB1nC4eG6hJ2k", "Kx9Qm2Lp7Vn4Rt8Wz3Yb6Hc1Fd5Gs0Aj"]
)
def test_a_key_pasted_into_api_key_env_is_refused_and_never_echoed(tmp_path: Path, key: str):
    _policy(tmp_path, _with_key_variable(f'"{key}"'))
    _profile(tmp_path)
    for result in (bitrate("policy", "check", "policy.yaml", cwd=tmp_path), serve("policy.yaml", tmp_path)):
        error = one_error_line(result)
        assert "policy.yaml:3" in error and "key 'models.big.api_key_env'" in error
        assert "looks like an API key" in error
        assert key not in result.stdout + result.stderr
        assert key[:12] not in result.stdout + result.stderr


def test_a_key_pasted_into_server_api_keys_env_is_refused_and_never_echoed(tmp_path: Path):
    _policy(tmp_path, POLICY.format(extra="") + f"server: {{api_keys_env: {PASTED_KEY}}}\n")
    _profile(tmp_path)
    result = bitrate("policy", "check", "policy.yaml", cwd=tmp_path)
    assert "key 'server.api_keys_env'" in one_error_line(result)
    assert PASTED_KEY not in result.stdout + result.stderr


def test_a_set_key_variable_passes(tmp_path: Path):
    _unset_key_variable(tmp_path)
    result = bitrate("policy", "check", "policy.yaml", cwd=tmp_path, env={UNSET: "a-real-key"})
    assert (result.returncode, result.stdout.strip()) == (0, "ok: 2 models, 1 routes"), result.stderr


def test_the_documented_example_needs_its_profile_and_keys_and_is_valid_on_its_own():
    result = bitrate("policy", "check", "examples/policy.yaml", cwd=REPO)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert "student-vs-frontier.json: cannot read profile" in lines[0]
    assert "OPENAI_API_KEY" in lines[1] and "BITRATE_API_KEYS" in lines[2]
    static = bitrate("policy", "check", "--static", "examples/policy.yaml", cwd=REPO)
    assert (static.returncode, static.stdout.strip()) == (0, "ok: 2 models, 1 routes")


def test_a_model_directory_that_fails_to_load_is_one_line_not_a_traceback(tmp_path: Path):
    pytest.importorskip("transformers")
    (tmp_path / "broken-model").mkdir()
    (tmp_path / "broken-model" / "config.json").write_text('{"model_type": "no-such-architecture"}')
    _policy(tmp_path, _with_model(f"  big: {{backend: transformers, model: '{tmp_path / 'broken-model'}'}}"))
    _profile(tmp_path, ANONYMOUS.model_dump_json())
    check = bitrate("policy", "check", "policy.yaml", cwd=tmp_path)
    assert check.returncode == 0, check.stderr  # a directory that will not load is too deep to check cheaply
    result = serve("policy.yaml", tmp_path)
    assert "Traceback" not in result.stderr and result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "broken-model" in errors[0], result.stderr


@pytest.mark.parametrize("command", [("profile", "import", "--out", "p.json"), ("route", "eval")])
def test_an_outcomes_file_that_is_not_utf8_is_one_line(tmp_path: Path, command: tuple[str, ...]):
    (tmp_path / "outcomes.jsonl").write_bytes(b'{"id": "1", "category": "caf\xe9"}\n')
    line = one_error_line(bitrate(*command, "--outcomes", "outcomes.jsonl", cwd=tmp_path))
    assert "outcomes.jsonl" in line
