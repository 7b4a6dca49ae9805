"""sdk.capabilities: what a request needs, what each backend serves by default, and what a side lacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from sdk.backends.config import ModelConfig
from sdk.capabilities import (
    ALL,
    NOTHING,
    Capabilities,
    Lacks,
    Needs,
    RouteCapabilities,
    capabilities_of,
    estimate_tokens,
    needs_of,
)
from sdk.embedded import model_dir
from sdk.errors import ConfigError
from sdk.policy import load_policy
from sdk.protocol import ChatRequest
from tests.support.tiny_model import CONTEXT

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
SCHEMA = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}


def req(content: object = "hi", **params: object) -> ChatRequest:
    return ChatRequest.model_validate(
        {"model": "auto", "messages": [{"role": "user", "content": content}], **params}
    )


def model(**config: object) -> ModelConfig:
    return TypeAdapter(ModelConfig).validate_python(config)


# id, request, -> needs (tokens not counted)
# fmt: off
NEEDS_TABLE = [
    ("plain text needs nothing", req(), Needs()),
    ("tools", req(tools=[TOOL]), Needs(tools=True)),
    ("tools offered with tool_choice none still need tools", req(tools=[TOOL], tool_choice="none"),
     Needs(tools=True)),
    ("tool_choice required", req(tool_choice="required"), Needs(tools=True)),
    ("tool_choice auto alone needs nothing", req(tool_choice="auto"), Needs()),
    ("an image part", req([{"type": "text", "text": "what is this?"}, IMAGE]), Needs(vision=True)),
    ("an audio part counts as vision", req([{"type": "input_audio", "input_audio": {}}]), Needs(vision=True)),
    ("text parts alone need nothing", req([{"type": "text", "text": "hi"}]), Needs()),
    ("json_schema", req(response_format=SCHEMA), Needs(json_schema=True)),
    ("json_object is left to the json_valid check", req(response_format={"type": "json_object"}), Needs()),
]
# fmt: on


@pytest.mark.parametrize(("request_", "needs"), [r[1:] for r in NEEDS_TABLE], ids=[r[0] for r in NEEDS_TABLE])
def test_needs_of(request_: ChatRequest, needs: Needs):
    assert needs_of(request_, count_tokens=False) == needs


def test_tokens_are_estimated_as_characters_over_four_rounded_up():
    assert estimate_tokens(req("x" * 400)) == 100
    assert estimate_tokens(req("x" * 401)) == 101
    parts = [{"type": "text", "text": "a" * 8}, IMAGE, {"type": "text", "text": "b" * 8}]
    assert estimate_tokens(req(parts)) == 4  # images carry no text
    with_tools = req("x" * 40, tools=[TOOL])
    assert estimate_tokens(with_tools) > 10  # the tool definitions are part of the prompt
    assert needs_of(req("x" * 400)).prompt_tokens == 100


def test_missing_lists_what_a_model_lacks_in_order():
    local = Capabilities(tools=False, vision=False, json_schema=False, max_context=100)
    everything = Needs(tools=True, vision=True, json_schema=True, prompt_tokens=101)
    assert local.missing(everything) == ("tools", "vision", "json_schema", "context")
    assert local.missing(Needs(prompt_tokens=100)) == ()
    assert ALL.missing(everything) == ()


def test_openai_backend_serves_everything_unless_told():
    http = {"backend": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "m"}
    assert capabilities_of(model(**http)) == ALL
    told = capabilities_of(model(**http, supports={"tools": False, "max_context": 8192}))
    assert told == Capabilities(tools=False, vision=True, json_schema=True, max_context=8192)


def test_transformers_backend_reads_its_context_from_the_model_directory(tiny_model_dir: Path):
    caps = capabilities_of(model(backend="transformers", model=str(tiny_model_dir)))
    assert caps == Capabilities(tools=False, vision=False, json_schema=False, max_context=CONTEXT)


def test_embedded_student_context_comes_from_n_positions():
    config = json.loads((model_dir("student") / "config.json").read_text())
    caps = capabilities_of(model(backend="transformers", model="embedded:student"))
    assert caps.max_context == config["n_positions"] and not caps.tools


def test_declared_supports_override_the_local_defaults(tiny_model_dir: Path):
    declared = {"json_schema": True, "tools": True, "max_context": 64}
    caps = capabilities_of(model(backend="transformers", model=str(tiny_model_dir), supports=declared))
    assert caps == Capabilities(tools=True, vision=False, json_schema=True, max_context=64)


def test_a_directory_without_a_readable_config_has_no_known_context(tmp_path: Path):
    assert capabilities_of(model(backend="transformers", model=str(tmp_path))).max_context is None
    (tmp_path / "config.json").write_text("not json")
    assert capabilities_of(model(backend="transformers", model=str(tmp_path))).max_context is None


def test_vllm_max_model_len_wins_over_the_directory(tiny_model_dir: Path):
    caps = capabilities_of(model(backend="vllm", model=str(tiny_model_dir), max_model_len=256))
    assert caps.max_context == 256 and not caps.tools


def test_route_lacks_per_side():
    local = Capabilities(tools=False, vision=False, json_schema=False, max_context=100)
    route = RouteCapabilities(student=local, frontier=ALL)
    assert route.lacks(req()) is NOTHING
    assert route.lacks(req(tools=[TOOL])) == Lacks(student=("tools",))
    assert route.lacks(req("x" * 404)) == Lacks(student=("context",))
    assert RouteCapabilities().lacks(req(tools=[TOOL])) is NOTHING  # both serve all: not even read


def test_what_the_other_side_lacks_after_a_refusal():
    local = Capabilities(tools=False, vision=False, json_schema=False, max_context=None)
    route = RouteCapabilities(student=ALL, frontier=local)
    assert route.lacks_besides(req(), "frontier", "tools") == ("tools",)
    assert route.lacks_besides(req(), "student", "tools") == ()
    assert route.lacks_besides(req(), "frontier", "context") == ()  # only trying tells


def test_a_misspelt_supports_key_is_a_load_error_naming_it(tmp_path: Path):
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\nmodels:\n  m: {backend: openai, base_url: 'http://h/v1', model: m,\n"
        "      supports: {tool: true}}\n"
    )
    with pytest.raises(ConfigError, match="supports.tool") as info:
        load_policy(path)
    assert "policy.yaml:" in str(info.value)
