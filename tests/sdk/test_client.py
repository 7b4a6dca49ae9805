"""sdk.Client / sdk.AsyncClient in-process, on two real TransformersBackends serving the tiny model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

import sdk
from sdk.decision import Decision
from sdk.errors import InvalidRequest, UnknownModel
from sdk.protocol import ChatCompletion, ChatRequest
from tests.sdk.test_engine import write_profile

MESSAGES = [{"role": "user", "content": "reverse: abc"}]
GREEDY = {"temperature": 0, "max_tokens": 24}


@pytest.fixture(scope="module")
def policy_path(tiny_model_dir: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("client")
    write_profile(root / "profile.json")
    model = {"backend": "transformers", "model": str(tiny_model_dir), "threads": 1}
    policy = {
        "version": 1,
        "models": {"student": model, "frontier": model},
        "routes": {
            "auto": {
                "student": "student",
                "frontier": "frontier",
                "profile": "profile.json",
                "tolerance": {"max_loss": 0.05, "confidence": 0.9},
                "tasks": {"detect": ["hint", "rules"], "rules": [{"match": "^reverse:", "task": "reverse"}]},
            }
        },
    }
    path = root / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def client(policy_path):
    with sdk.Client(policy=str(policy_path)) as c:
        yield c


@pytest.fixture(scope="module")
def direct_answer(tiny_backend) -> str:
    request = ChatRequest(model="tiny", messages=MESSAGES, **GREEDY)
    return asyncio.run(tiny_backend.complete(request)).choices[0].message.content


def test_greedy_answer_equals_the_chosen_backend_called_directly(client, direct_answer):
    completion = client.chat.completions.create(model="auto", messages=MESSAGES, **GREEDY)
    assert isinstance(completion, ChatCompletion)
    assert completion.choices[0].message.content == direct_answer
    assert completion.usage.completion_tokens > 0
    decision = completion.bitrate
    assert isinstance(decision, Decision)
    assert (decision.side, decision.task, decision.rule) == ("student", "reverse", "verdict")
    assert '"bitrate":{"route":"auto"' in completion.model_dump_json()


def test_streaming_yields_the_same_text_and_the_decision(client, direct_answer):
    stream = client.chat.completions.create(model="auto", messages=MESSAGES, stream=True, **GREEDY)
    assert stream.bitrate.side == "student"
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == direct_answer
    assert chunks[-1].bitrate == stream.bitrate


def test_hint_header_and_direct_model(client):
    hinted = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "2+2"}],
        extra_headers={"X-Bitrate-Task": "add"},
        **GREEDY,
    )
    assert (hinted.bitrate.task, hinted.bitrate.task_source) == ("add", "hint")
    assert hinted.bitrate.side == "frontier"  # 'add' is unsafe in the profile
    direct = client.chat.completions.create(model="student", messages=MESSAGES, **GREEDY)
    assert (direct.bitrate.side, direct.bitrate.target) == ("direct", "student")


def test_bad_requests_raise_request_errors(client):
    with pytest.raises(InvalidRequest) as info:
        client.chat.completions.create(model="auto", messages=MESSAGES, temperature=5)
    assert info.value.param == "temperature"
    with pytest.raises(UnknownModel):
        client.chat.completions.create(model="nope", messages=MESSAGES)


def test_sync_client_works_inside_a_running_event_loop(client, direct_answer):
    async def notebook_cell() -> str:
        return (
            client.chat.completions.create(model="auto", messages=MESSAGES, **GREEDY)
            .choices[0]
            .message.content
        )

    assert asyncio.run(notebook_cell()) == direct_answer


async def test_async_client_complete_and_stream(policy_path, direct_answer):
    async with sdk.AsyncClient(policy=policy_path) as client:
        completion = await client.chat.completions.create(model="auto", messages=MESSAGES, **GREEDY)
        assert completion.choices[0].message.content == direct_answer
        stream = await client.chat.completions.create(model="auto", messages=MESSAGES, stream=True, **GREEDY)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == direct_answer and stream.bitrate.target == "student"


async def test_async_stream_closed_early(policy_path):
    async with sdk.AsyncClient(policy=policy_path) as client:
        stream = await client.chat.completions.create(model="auto", messages=MESSAGES, stream=True, **GREEDY)
        async with stream:
            first = await anext(aiter(stream))
            assert first.choices


def test_routing_modules_import_light():
    import subprocess
    import sys

    heavy = ("torch", "transformers", "vllm", "fastapi", "uvicorn", "numpy")
    code = (
        "import sys, sdk, sdk.client, sdk.engine, sdk.decide, sdk.detect\n"
        "sdk.Client, sdk.load_policy\n"
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
