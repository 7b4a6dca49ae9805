"""What a request needs of a model and what each model can serve: the inputs of ``decide()``'s
``capability`` rule. Pure, apart from :func:`capabilities_of` reading a local model's
``config.json`` once, when a route loads.

A request's needs (:func:`needs_of`):

============ ==========================================================================
need         the request has
============ ==========================================================================
tools        ``tools``, or a ``tool_choice`` that asks for a call (``required``, a function)
vision       a non-text content part (``image_url``; audio and file parts count too)
json_schema  ``response_format: {type: json_schema}`` (``json_object`` is left to the
             ``json_valid`` check: any model can be asked for JSON)
context      a prompt longer than the model's ``max_context``, estimated as characters / 4
============ ==========================================================================

The token estimate is deliberately cheap (no tokenizer on the routing path) and errs low on
text that tokenizes densely (code, non-Latin scripts). It is the first line only: a local
backend counts the real tokens and refuses a prompt that does not fit before generating
(:class:`~sdk.errors.Unsupported`, need ``context``), which the engine answers like a capability
miss: the route's other side is asked.

What a model serves (:func:`capabilities_of`): its policy entry's ``supports`` keys, the rest
from its backend's defaults:

============= ====== ====== =========== ================================================
backend       tools  vision json_schema max_context
============= ====== ====== =========== ================================================
openai        yes    yes    yes         unknown (never rerouted for length) unless set
transformers  no     no     no          ``config.json``: ``max_position_embeddings`` (or
                                        ``n_positions``, ``max_sequence_length``, ``seq_length``)
vllm          no     no     no          ``max_model_len``, else as transformers
============= ====== ====== =========== ================================================

Local backends neither constrain decoding to a schema nor add it to the prompt, so they do
not claim ``json_schema``; set ``supports: {json_schema: true}`` to let a student try anyway,
with the ``json_schema`` escalation check catching the answers that do not validate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from sdk.backends.config import ModelConfig, OpenAIConfig, SupportsConfig, VLLMConfig
from sdk.embedded import resolve_model_path
from sdk.protocol import ChatRequest, TextPart

__all__ = [
    "ALL",
    "NEEDS",
    "NOTHING",
    "Capabilities",
    "Lacks",
    "Needs",
    "RouteCapabilities",
    "capabilities_of",
    "estimate_tokens",
    "needs_of",
]

NEEDS = ("tools", "vision", "json_schema", "context")
"""Every need name, in the order reasons and metrics list them."""
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
"""Where a Hugging Face ``config.json`` states the context length, most common first."""
_CHARS_PER_TOKEN = 4


class Needs(NamedTuple):
    """What one request needs of the model that answers it (a tuple: built on every routed request)."""

    tools: bool = False
    """It offers tools or asks for a call."""
    vision: bool = False
    """A message has a non-text part."""
    json_schema: bool = False
    """It asks for JSON following a schema."""
    prompt_tokens: int = 0
    """Estimated prompt length in tokens (:func:`estimate_tokens`)."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What one model serves (every field resolved: the policy's ``supports`` over the backend's defaults)."""

    tools: bool = True
    """Calls tools."""
    vision: bool = True
    """Reads non-text parts."""
    json_schema: bool = True
    """Follows a requested JSON schema."""
    max_context: int | None = None
    """Context length in tokens; ``None``: unknown, never rerouted for length."""

    def missing(self, needs: Needs) -> tuple[str, ...]:
        """The needs this model lacks, in :data:`NEEDS` order (empty when it serves them all)."""
        lacking: list[str] = []
        if needs.tools and not self.tools:
            lacking.append("tools")
        if needs.vision and not self.vision:
            lacking.append("vision")
        if needs.json_schema and not self.json_schema:
            lacking.append("json_schema")
        if self.max_context is not None and needs.prompt_tokens > self.max_context:
            lacking.append("context")
        return tuple(lacking)

    def serves(self, need: str) -> bool:
        """Whether this model claims ``need``; ``context`` always (only trying tells whether a
        prompt another model found too long fits this one)."""
        return need == "context" or bool(getattr(self, need, False))


ALL = Capabilities()
"""A model that serves everything (the ``openai`` backend's default)."""


@dataclass(frozen=True, slots=True)
class Lacks:
    """For one request: the needs each side of a route lacks (what ``decide()`` reads)."""

    student: tuple[str, ...] = ()
    """What the student lacks, in :data:`NEEDS` order."""
    frontier: tuple[str, ...] = ()
    """What the frontier lacks."""

    def of(self, side: str) -> tuple[str, ...]:
        """What ``side`` (``student`` or ``frontier``) lacks."""
        return self.frontier if side == "frontier" else self.student


NOTHING = Lacks()
"""Neither side lacks anything."""


@dataclass(frozen=True, slots=True)
class RouteCapabilities:
    """What a route's two models serve, resolved once when the route loads."""

    student: Capabilities = ALL
    frontier: Capabilities = ALL

    def of(self, side: str) -> Capabilities:
        """The capabilities of ``side`` (``student`` or ``frontier``)."""
        return self.frontier if side == "frontier" else self.student

    def lacks(self, request: ChatRequest) -> Lacks:
        """What each side lacks for ``request`` (:data:`NOTHING`, without reading the request,
        when both serve everything with no context limit)."""
        if (self.student is ALL or self.student == ALL) and (self.frontier is ALL or self.frontier == ALL):
            return NOTHING
        counted = self.student.max_context is not None or self.frontier.max_context is not None
        needs = needs_of(request, count_tokens=counted)
        student, frontier = self.student.missing(needs), self.frontier.missing(needs)
        return Lacks(student, frontier) if student or frontier else NOTHING

    def lacks_besides(self, request: ChatRequest, side: str, need: str) -> tuple[str, ...]:
        """What ``side`` lacks for ``request`` once the other side refused it for ``need``: its
        declared gaps for the request, and ``need`` when it does not claim that either."""
        caps = self.of(side)
        missing = caps.missing(needs_of(request, count_tokens=caps.max_context is not None))
        return missing if caps.serves(need) or need in missing else (*missing, need)


def estimate_tokens(request: ChatRequest) -> int:
    """The prompt's length in tokens, estimated as characters / 4 (rounded up) over the messages'
    text, their tool calls' arguments and the tool definitions."""
    chars = 0
    for message in request.messages:
        content = message.content
        if isinstance(content, str):
            chars += len(content)
        elif content is not None:
            chars += sum(len(p.text) for p in content if isinstance(p, TextPart))
        for call in message.tool_calls or ():
            chars += len(call.function.name) + len(call.function.arguments)
    for tool in request.tools or ():
        chars += len(tool.function.name) + len(json.dumps(tool.function.parameters or {}))
    return -(-chars // _CHARS_PER_TOKEN)


def needs_of(request: ChatRequest, *, count_tokens: bool = True) -> Needs:
    """What ``request`` needs (see the module docstring); ``count_tokens=False`` skips the length."""
    choice = request.tool_choice
    tools = bool(request.tools) or (choice is not None and choice not in ("none", "auto"))
    vision = any(
        isinstance(m.content, list) and any(p.type != "text" for p in m.content) for m in request.messages
    )
    fmt = request.response_format
    return Needs(
        tools=tools,
        vision=vision,
        json_schema=fmt is not None and fmt.type == "json_schema",
        prompt_tokens=estimate_tokens(request) if count_tokens else 0,
    )


def capabilities_of(config: ModelConfig) -> Capabilities:
    """What the model of ``config`` serves: its ``supports`` keys over its backend's defaults."""
    if isinstance(config, OpenAIConfig):
        default = ALL
    else:
        context = config.max_model_len if isinstance(config, VLLMConfig) else None
        default = Capabilities(False, False, False, context or _context_of(config.model))
    return _declared(config.supports, default)


def _declared(supports: SupportsConfig, default: Capabilities) -> Capabilities:
    if not supports.model_fields_set:
        return default  # (ALL itself for an ``openai`` model: ``lacks`` checks it by identity first)
    return Capabilities(
        tools=default.tools if supports.tools is None else supports.tools,
        vision=default.vision if supports.vision is None else supports.vision,
        json_schema=default.json_schema if supports.json_schema is None else supports.json_schema,
        max_context=supports.max_context or default.max_context,
    )


def _context_of(model: str) -> int | None:
    """The context length a local model directory's ``config.json`` states, or ``None`` when the file
    is missing or unreadable (the backend reports that itself when it loads)."""
    try:
        config = json.loads((Path(resolve_model_path(model)) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    for key in _CONTEXT_KEYS:
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None
