"""The first hour one step off the tour (issue 16): fail fast in one line, one unit of loss, the
ecosystem's defaults (OPENAI_*, BITRATE_*, --config, the student on 8001), --version and exit
statuses, progress and Ctrl-C, a slim install that still routes."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bitrate_cli import build_app
from bitrate_cli import profile_build as profile_build_module
from bitrate_cli.common import DEFAULT_MAX_LOSS, parse_confidence, parse_max_loss
from bitrate_cli.profile_build import interrupted_line
from profiles.cache import CallCache
from profiles.runner import RunOptions, Tally, _Progress
from sdk.backends.config import OpenAIConfig
from sdk.errors import ConfigError
from sdk.policy import Policy, ToleranceConfig
from sdk.policy_check import check_policy_file
from sdk.settings import load_settings
from sdk.yaml_config import keys_at
from tests.support.net import free_port

runner = CliRunner()
app = build_app()
REPO = Path(__file__).resolve().parents[2]


def bitrate(*args: str):
    return runner.invoke(app, list(args))


# fail fast


def test_serve_says_the_port_is_in_use_before_loading_anything():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = bitrate("serve", "--port", str(port))
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"error: port {port} on 127.0.0.1 is in use (choose another with --port or BITRATE_PORT)\n"
    )


def test_serve_refuses_a_bad_setting_from_the_environment_in_one_line(monkeypatch):
    monkeypatch.setenv("BITRATE_PORT", "eighty")
    result = bitrate("serve")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: key 'BITRATE_PORT': Input should be a valid integer")
    assert len(result.stderr.splitlines()) == 1


def test_unknown_keys_name_the_closest_known_one(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text(
        textwrap.dedent("""\
        version: 1
        models:
          big: {backend: openai, base_ur: "http://x/v1", model: m}
          small: {backend: transformers, model: "embedded:student", devce: cpu}
        routes:
          auto:
            student: small
            frontier: big
            tolerence: {max_loss: 0.1}
            fallback: {student_eror: frontier}
        """)
    )
    result = bitrate("policy", "check", "--static", str(path))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {path}:3: key 'models.big.base_ur': unknown key (did you mean 'base_url'?)",
        f"error: {path}:4: key 'models.small.devce': unknown key (did you mean 'device'?)",
        f"error: {path}:10: key 'routes.auto.fallback.student_eror': unknown key "
        "(did you mean 'student_error'?)",
        f"error: {path}:9: key 'routes.auto.tolerence': unknown key (did you mean 'tolerance'?)",
    ]


def test_keys_at_walks_dicts_lists_and_tagged_unions():
    assert "base_url" in keys_at(Policy, ("models", "big", "openai"))
    assert "device" in keys_at(Policy, ("models", "small", "transformers"))
    assert keys_at(Policy, ("routes", "auto", "escalate", 0, "json_valid")) == ["check"]
    assert keys_at(Policy, ("routes", "auto", "nothing_here")) == []


def test_version_and_exit_statuses_are_documented():
    version = bitrate("--version")
    assert version.exit_code == 0 and version.stdout.startswith("bitrate ")
    for args in ((), ("serve",)):
        text = " ".join(bitrate(*args, "--help").stdout.split())
        assert "Exit status: 0 done; 2 a usage or configuration error" in text
        assert "130 interrupted" in text
    readme = (REPO / "README.md").read_text()
    for row in ("| 0 | done |", "| 2 | a usage or configuration error", "| 3 |", "| 130 | interrupted"):
        assert row in readme


# one unit


@pytest.mark.parametrize(
    ("text", "value", "noted"),
    [
        ("0.1", 0.1, False),
        ("0", 0.0, False),
        ("10pt", 0.1, False),
        ("2.5 points", 0.025, False),
        ("10%", 0.1, False),
        ("10", 0.1, True),  # a loss fraction is at most 1: a bare 10 is points, said in a note
        ("1", 1.0, True),  # the fraction, with a note that one point is 0.01
    ],
)
def test_max_loss_takes_fractions_and_unambiguous_points(text: str, value: float, noted: bool):
    parsed, note = parse_max_loss(text)
    assert parsed == pytest.approx(value)
    assert (note is not None) == noted


@pytest.mark.parametrize("text", ["150", "-0.1", "ten", "10pts%", "1e9pt"])
def test_max_loss_refuses_the_rest_in_one_line(text: str):
    with pytest.raises(ConfigError, match=r"^key '--max-loss': '.*' is (out of range|not a number): give"):
        parse_max_loss(text)


def test_confidence_takes_a_level_or_a_percent():
    assert parse_confidence("0.95") == (0.95, None)
    assert parse_confidence("95%") == (0.95, None)
    assert parse_confidence("90")[0] == pytest.approx(0.9)
    for bad in ("1.5", "1", "100", "0"):
        with pytest.raises(ConfigError, match="--confidence"):
            parse_confidence(bad)


def _outcomes(path: Path) -> Path:
    rows = [
        {"id": f"i{i}", "category": "c", "prompt": "q", "student": int(i % 10 != 0), "frontier": 1}
        for i in range(200)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_import_defaults_to_the_policy_tolerance_and_show_reads_points(tmp_path: Path):
    out = tmp_path / "p.json"
    imported = bitrate(
        "profile", "import", "--outcomes", str(_outcomes(tmp_path / "o.jsonl")), "--out", str(out)
    )
    assert imported.exit_code == 0, imported.output
    tolerance = json.loads(out.read_text())["tolerance"]
    assert tolerance["max_loss"] == DEFAULT_MAX_LOSS == ToleranceConfig().max_loss
    assert tolerance["confidence"] == ToleranceConfig().confidence
    shown = bitrate("profile", "show", str(out), "--max-loss", "20", "--json")
    assert shown.exit_code == 0, shown.output
    assert shown.stderr == "note: --max-loss 20 read as 20 points: 0.20\n"
    category = json.loads(shown.stdout)["categories"]["c"]
    assert category["verdict"] == "safe" and category["loss"] == pytest.approx(0.1)
    table = " ".join(bitrate("profile", "show", str(out)).stdout.split())
    assert "+0.100" in table and "at most 2 points of quality lost, 90% sure" in table


@pytest.mark.parametrize("args", [("--max-loss", "150"), ("--max-loss", "lots"), ("--confidence", "2")])
def test_profile_build_refuses_a_bad_tolerance_before_loading_a_model(tmp_path: Path, args: tuple[str, str]):
    result = bitrate("profile", "build", "--suite", "tiny", "--out", str(tmp_path / "p.json"), *args)
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(f"error: key '{args[0]}'")
    assert "Traceback" not in result.output and not (tmp_path / "p.json").exists()


def test_build_profile_the_library_raises_config_error_not_a_pydantic_trace():
    with pytest.raises(ConfigError, match="--max-loss"):
        profile_build_module.build_profile(suite=["tiny"], max_loss=10)


# the ecosystem's defaults


def test_an_openai_backend_without_url_or_key_variable_follows_the_official_client(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    bare = OpenAIConfig(backend="openai", model="gpt")
    assert (bare.base_url, bare.api_key_env) == ("https://api.openai.com/v1", "OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy:9000/v1")
    assert OpenAIConfig(backend="openai", model="gpt").base_url == "http://proxy:9000/v1"
    local = OpenAIConfig(backend="openai", model="student", base_url="http://127.0.0.1:8001/v1")
    assert local.api_key_env is None, "a key meant for OpenAI is not sent to a URL the file names"
    monkeypatch.setenv("OPENAI_BASE_URL", "not a url")
    with pytest.raises(ValueError, match=r"\$OPENAI_BASE_URL"):
        OpenAIConfig(backend="openai", model="gpt")


def test_policy_check_asks_for_openai_api_key_when_the_defaults_apply(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nmodels:\n  big: {backend: openai, model: gpt-4o}\n")
    _, problems = check_policy_file(path, environ={})
    assert [str(p) for p in problems] == [
        f"{path}:3: key 'models.big.api_key_env': environment variable OPENAI_API_KEY is not set or empty; "
        "it must hold the API key of 'big' (no base_url and no api_key_env: it calls "
        "https://api.openai.com/v1 as the openai client does)"
    ]
    assert check_policy_file(path, environ={"OPENAI_API_KEY": "sk-x"})[1] == []


def test_settings_flag_over_environment_over_dotenv_over_default(tmp_path: Path, monkeypatch):
    for name in ("BITRATE_PORT", "BITRATE_HOST", "BITRATE_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    assert load_settings().port == 8000
    (tmp_path / ".env").write_text("BITRATE_PORT=7001\nBITRATE_HOST=0.0.0.0\nOPENAI_API_KEY=ignored\n")
    assert (load_settings().port, load_settings().host) == (7001, "0.0.0.0")
    monkeypatch.setenv("BITRATE_PORT", "7002")
    monkeypatch.setenv("BITRATE_LOG_LEVEL", "DEBUG")
    assert (load_settings().port, load_settings().log_level) == (7002, "debug")
    assert load_settings(port=7003, host=None).port == 7003


def test_config_is_an_alias_of_policy_and_bitrate_policy_a_default(tmp_path: Path, monkeypatch):
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nmodels:\n  big: {backend: openai, base_url: http://x/v1, model: m}\n")
    assert bitrate("policy", "check", "--config", str(path)).stdout == "ok: 1 models, 0 routes\n"
    explained = bitrate("route", "explain", "--config", str(path), "hello")
    assert explained.exit_code == 0 and "route:   big -> big" in explained.stdout
    monkeypatch.setenv("BITRATE_POLICY", str(path))
    assert bitrate("policy", "check").stdout == "ok: 1 models, 0 routes\n"


def test_student_serve_listens_on_8001_as_student(tmp_path: Path):
    result = bitrate("student", "serve", "--model", str(tmp_path), "--print-command")
    argv = result.stdout.split()
    assert argv[argv.index("--port") + 1] == "8001"
    assert argv[argv.index("--served-model-name") + 1] == "student"


# progress and Ctrl-C


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_off_a_terminal_is_plain_periodic_lines():
    tally, stream, clock = Tally(total=4), io.StringIO(), _Clock()
    with _Progress(tally, RunOptions(log_every=10), stream=stream, clock=clock) as advance:
        tally.calls.update(student=1, frontier=1)
        advance()  # at 0 s: too soon for a line
        clock.now = 12
        tally.calls.update(student=1, cached=1)
        advance()
        clock.now = 15
        advance()
        advance()
    assert stream.getvalue().splitlines() == [
        "profiling: 4 items, each asked of the student and the frontier",
        "profiling: 2/4 items (50%), 3 model calls, 1 cached, 12s",
        "profiling: 4/4 items (100%), 3 model calls, 1 cached, 15s",
    ]
    quiet = io.StringIO()
    with _Progress(Tally(total=1), RunOptions(quiet=True), stream=quiet) as advance:
        advance()
    assert quiet.getvalue() == ""


def test_ctrl_c_during_profile_build_says_where_the_cache_stands(tmp_path: Path, monkeypatch):
    def interrupted(**kwargs):
        tally: Tally = kwargs["tally"]
        tally.total, tally.done, tally.calls = 360, 122, Counter(student=124, frontier=124)
        raise KeyboardInterrupt

    monkeypatch.setattr(profile_build_module, "build_profile", interrupted)
    cache = tmp_path / "cache"
    result = bitrate("profile", "build", "--suite", "tiny", "--out", "p.json", "--cache-dir", str(cache))
    assert result.exit_code == 130
    assert result.stderr == (
        f"interrupted after 122 of 360 items; 248 new answers are in the call cache {cache / 'calls.sqlite'} "
        "(0 in all): run the same command again to resume without asking them again\n"
    )


def test_interrupted_without_a_cache_says_a_new_run_starts_over(tmp_path: Path):
    tally = Tally(total=10, done=3)
    assert interrupted_line(tally, None).endswith("nothing was cached (--no-cache): a new run starts over")
    with CallCache(tmp_path) as cache:
        assert "(0 in all)" in interrupted_line(tally, cache)


# a slim install


SLIM = """\
import importlib.abc, sys
HEAVY = ("torch", "transformers", "vllm", "openai", "matplotlib")
class Slim(importlib.abc.MetaPathFinder):  # as if only the core dependencies were installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Slim())
import sdk
with sdk.Client(policy=sys.argv[1]) as client:
    answer = client.chat.completions.create(model="big", messages=[{"role": "user", "content": "hi"}])
print(answer.bitrate.target, ",".join(m for m in HEAVY if m in sys.modules) or "-")
"""


def test_a_core_install_imports_sdk_and_routes_in_process(tmp_path: Path):
    from tests.support.fault_server import fault_server

    with fault_server() as upstream:
        path = tmp_path / "p.yaml"
        path.write_text(
            f'version: 1\nmodels:\n  big: {{backend: openai, base_url: "{upstream.base_url}", model: m}}\n'
        )
        done = subprocess.run(
            [sys.executable, "-c", SLIM, str(path)], capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["big", "-"]


def test_a_free_port_passes_the_check(tmp_path: Path):
    result = bitrate("serve", "--port", str(free_port()), "--policy", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2
    assert "in use" not in result.stderr and "missing.yaml" in result.stderr
