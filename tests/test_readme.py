"""Every snippet in README.md runs, in order, in a fresh directory.

Fenced blocks are read by their info string:

- ```` ```yaml file=NAME ```` (or any language with ``file=``): written to NAME;
- ```` ```sh ````: each line is a command (``$`` prompts and ``#`` comments
  stripped); a line ending in ``&`` starts a background server that is waited
  for (``--port N``) and stopped by PID at the end;
- ```` ```python ````: executed with ``exec`` in one shared namespace;
- ```` ```sh norun ````: the two set-up commands, which CI itself runs
  (``make test``) and ``tests/cli/test_demo.py`` covers (``bitrate demo``);
- ```` ```text ````: output shown to the reader, not run.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.net import free_port, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.S | re.M)
BIN = Path(sys.executable).parent


def blocks() -> list[tuple[str, dict[str, str], str]]:
    out = []
    for info, body in FENCE.findall(README.read_text()):
        words = info.split()
        lang = words[0] if words else ""
        opts = dict(w.split("=", 1) if "=" in w else (w, "") for w in words[1:])
        out.append((lang, opts, body))
    return out


def test_readme_starts_with_the_two_commands():
    lang, opts, body = blocks()[0]
    assert (lang, "norun" in opts) == ("sh", True)
    assert [line.split("#")[0].strip() for line in body.splitlines()] == ["make demo", "make test"]


@pytest.mark.slow
def test_every_readme_snippet_runs(tmp_path):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "BITRATE_CACHE_DIR": str(tmp_path)}
    port = free_port()  # the README says 8000; a free port keeps parallel runs apart
    background: list[subprocess.Popen] = []
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for lang, opts, body in blocks():
            body = body.replace("8000", str(port))
            if "file" in opts:
                Path(opts["file"]).write_text(body)
            elif lang == "sh" and "norun" not in opts:
                for line in body.splitlines():
                    command = line.split(" #")[0].removeprefix("$ ").strip()
                    if not command or command.startswith("#"):
                        continue
                    if command.endswith("&"):
                        argv = shlex.split(command[:-1])
                        log = (tmp_path / "server.log").open("wb")
                        proc = subprocess.Popen(
                            argv, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT
                        )
                        log.close()  # the child holds its own copy
                        background.append(proc)
                        wait_until_up(port, process=proc, timeout=120)
                        continue
                    done = subprocess.run(
                        command, shell=True, env=env, capture_output=True, text=True, timeout=600
                    )
                    assert done.returncode == 0, f"`{command}` failed:\n{done.stdout}\n{done.stderr}"
            elif lang == "python":
                exec(compile(body, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    finally:
        os.chdir(cwd)
        for proc in background:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert namespace, "the README has no python snippet"


def test_the_readme_shows_the_error_a_policy_typo_really_gives(tmp_path):
    text = README.read_text()
    claimed = re.search(r"`(error: policy\.yaml:\d+: key '[^']+': [^`]+)`", text).group(1)
    policy = next(body for lang, opts, body in blocks() if opts.get("file") == "policy.yaml")
    (tmp_path / "policy.yaml").write_text(policy.replace("tolerance:", "tolerence:"))
    done = subprocess.run(
        [str(BIN / "bitrate"), "policy", "check", "policy.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert (done.stdout + done.stderr).strip() == claimed
