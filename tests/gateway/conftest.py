"""Gateways for the tests: one on the tiny model (shared by the session), others on a fault server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from sdk.policy import Policy, load_policy
from tests.support.gateway_server import RunningServer, running_gateway

CHEAP = {"input": 0.05, "output": 0.10}
DEAR = {"input": 2.50, "output": 10.00}

TINY_POLICY = """\
version: 1
models:
  frontier: {{backend: transformers, model: "{model}", threads: 1, price: {{input: 2.50, output: 10.00}}}}
  student: {{backend: transformers, model: "{model}", threads: 1, price: {{input: 0.05, output: 0.10}}}}
routes:
  auto:
    student: student
    frontier: frontier
    tasks:
      detect: [hint, rules]
      rules: [{{match: "^copy:", task: copy}}]
    pin: {{copy: student}}
"""


@pytest.fixture(scope="session")
def tiny_policy_path(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A policy file: route ``auto`` over two copies of the tiny model; ``copy`` pinned to the student."""
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(TINY_POLICY.format(model=tiny_model_dir))
    return path


@pytest.fixture(scope="session")
def tiny_gateway(tiny_policy_path: Path) -> Iterator[RunningServer]:
    """A real gateway on 127.0.0.1 serving the tiny policy (shared: it loads two models)."""
    with running_gateway(load_policy(tiny_policy_path)) as server:
        yield server


def upstream_policy(base_url: str, *, server: dict[str, Any] | None = None, **openai: Any) -> Policy:
    """A policy whose ``frontier`` and ``student`` are the OpenAI-compatible server at ``base_url``
    (no retries, so each scripted fault is seen once), with route ``auto`` over them."""

    def model(name: str, price: dict[str, float]) -> dict[str, Any]:
        return {
            "backend": "openai",
            "base_url": base_url,
            "model": name,
            "max_retries": 0,
            "price": price,
            **openai,
        }

    data: dict[str, Any] = {
        "version": 1,
        "models": {"frontier": model("big", DEAR), "student": model("small", CHEAP)},
        "routes": {"auto": {"student": "student", "frontier": "frontier", "tasks": {"detect": ["hint"]}}},
    }
    if server:
        data["server"] = server
    return Policy.model_validate(data)


@pytest.fixture
def make_client() -> Iterator[Callable[..., openai.OpenAI]]:
    """``make_client(server, key="unused")``: an official sync client (no retries), closed after the test."""
    made: list[openai.OpenAI] = []

    def make(server: RunningServer, key: str = "unused") -> openai.OpenAI:
        client = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
