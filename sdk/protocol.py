"""OpenAI chat-completions wire types, as clients really send them.

Requests keep unknown fields (``extra="allow"``) so an HTTP backend can pass
them through untouched; responses and chunks also allow extras so fields that
upstreams add (``system_fingerprint``, ``service_tier``...) survive a proxy hop.
Values are as lax as the OpenAI API's (an integer where a float goes), except that
a request's booleans are strict (``"stream": "yes"`` is a 400, not ``true``) and its
floats finite.
Every field carries a docstring: the schema printed by ``bitrate policy schema``
and the gateway's OpenAPI document are generated from them.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatMessage",
    "ChatRequest",
    "Choice",
    "ChunkChoice",
    "Delta",
    "ErrorBody",
    "ErrorDetail",
    "Usage",
    "WireModel",
    "new_completion_id",
    "text_of",
]


class WireModel(BaseModel):
    """Base for wire objects: unknown fields are kept, not rejected; field docstrings documented."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, use_attribute_docstrings=True)

    def set_extra(self, name: str, value: Any) -> None:
        """Set an extra (undeclared) field, as ``obj.name = value`` would, but straight into
        ``model_extra``: pydantic's assignment path costs ~4 us, on every proxied answer."""
        if name in type(self).__pydantic_fields__:
            raise AttributeError(f"{name!r} is a declared field; assign it normally")
        extra = self.__pydantic_extra__
        if extra is None:  # (never for these models: extra="allow")
            setattr(self, name, value)
        else:
            extra[name] = value


# --------------------------------------------------------------------- request


class TextPart(WireModel):
    """A text part of a multi-part message content."""

    type: Literal["text"] = "text"
    """Always ``"text"``."""
    text: str
    """The text of this part."""


class ImageURL(WireModel):
    url: str
    """An ``https://`` or ``data:`` URL of the image."""
    detail: str | None = None
    """``auto``, ``low`` or ``high``."""


class ImagePart(WireModel):
    """An image part; local backends reject it, HTTP backends pass it on."""

    type: Literal["image_url"] = "image_url"
    """Always ``"image_url"``."""
    image_url: ImageURL
    """Where the image is."""


class OtherPart(WireModel):
    """Any other content part (audio, file, ...): kept and passed through."""

    type: str
    """The part's type name."""


ContentPart = TextPart | ImagePart | OtherPart


class FunctionCall(WireModel):
    name: str
    """The function's name."""
    arguments: str = ""
    """The arguments as a JSON string, as the model wrote them."""


class ToolCall(WireModel):
    id: str
    """The call's id; a ``tool`` message answers it by ``tool_call_id``."""
    type: Literal["function"] = "function"
    """Always ``"function"``."""
    function: FunctionCall
    """The function called and its arguments."""


class ChatMessage(WireModel):
    """One message of the conversation."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    """Who wrote it. ``developer`` is the newer name for ``system``."""
    content: str | list[ContentPart] | None = None
    """Text, or a list of parts; ``None`` for an assistant turn with only tool calls."""
    name: str | None = None
    """Optional name of the participant."""
    tool_calls: list[ToolCall] | None = None
    """Tool calls an assistant message made."""
    tool_call_id: str | None = None
    """For ``role="tool"``: the id of the call this message answers."""

    @model_validator(mode="after")
    def _check_role_fields(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a message with role 'tool' needs 'tool_call_id'")
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a '{self.role}' message needs 'content'")
        return self


def text_of(message: ChatMessage) -> str:
    """The plain text of a message: its string content or its text parts joined."""
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "".join(p.text for p in message.content if isinstance(p, TextPart))


class StreamOptions(WireModel):
    include_usage: StrictBool = False
    """Send a last chunk with ``usage`` and no choices."""


class JSONSchemaSpec(WireModel):
    name: str
    """Name of the schema."""
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    """The JSON Schema the answer must satisfy."""
    strict: StrictBool | None = None
    """Ask for strict schema adherence."""
    description: str | None = None
    """What the schema is for."""


class ResponseFormatText(WireModel):
    type: Literal["text"]
    """Plain text (the default)."""


class ResponseFormatJSONObject(WireModel):
    type: Literal["json_object"]
    """Any valid JSON object."""


class ResponseFormatJSONSchema(WireModel):
    type: Literal["json_schema"]
    """JSON that satisfies ``json_schema.schema``."""
    json_schema: JSONSchemaSpec
    """The schema and its name."""


ResponseFormat = Annotated[
    ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema,
    Field(discriminator="type"),
]


class FunctionDef(WireModel):
    name: str
    """The function's name."""
    description: str | None = None
    """What the function does, for the model."""
    parameters: dict[str, Any] | None = None
    """JSON Schema of the arguments."""
    strict: StrictBool | None = None
    """Ask for strict argument schema adherence."""


class Tool(WireModel):
    type: Literal["function"] = "function"
    """Always ``"function"``."""
    function: FunctionDef
    """The function offered to the model."""


class ChatRequest(WireModel):
    """A ``POST /v1/chat/completions`` body. Unknown fields are kept for pass-through."""

    model: str
    """A route name (``auto``) or a direct model name from the policy."""
    messages: list[ChatMessage] = Field(min_length=1)
    """The conversation so far; at least one message."""
    temperature: float | None = Field(default=None, ge=0.0, le=2.0, allow_inf_nan=False)
    """Sampling temperature; 0 means greedy."""
    top_p: float | None = Field(default=None, gt=0.0, le=1.0, allow_inf_nan=False)
    """Nucleus sampling mass."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Most tokens to generate (older name)."""
    max_completion_tokens: int | None = Field(default=None, ge=1)
    """Most tokens to generate (newer name; wins over ``max_tokens``)."""
    n: int = Field(default=1, ge=1, le=16)
    """How many choices to generate."""
    stop: str | list[str] | None = None
    """Up to 4 sequences where generation stops (not included in the answer)."""
    seed: int | None = None
    """Seed for sampling, for reproducible answers."""
    stream: StrictBool = False
    """Answer as server-sent events."""
    stream_options: StreamOptions | None = None
    """Streaming options; ``include_usage`` adds a final usage chunk."""
    logprobs: StrictBool | None = None
    """Return log-probabilities of the chosen tokens."""
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    """How many alternatives per position to return with ``logprobs``."""
    response_format: ResponseFormat | None = None
    """Text, any JSON object, or JSON following a schema."""
    tools: list[Tool] | None = None
    """Functions the model may call."""
    tool_choice: str | dict[str, Any] | None = None
    """``none``, ``auto``, ``required`` or a named function."""
    user: str | None = None
    """An end-user id, for abuse monitoring upstream."""
    metadata: dict[str, str] | None = None
    """Free key-value pairs; ``metadata.task`` is a task hint for routing."""
    bitrate: dict[str, Any] | None = None
    """bitrate options in the body, e.g. ``{"task": "code"}``; never sent upstream."""

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @property
    def token_limit(self) -> int | None:
        """The effective generation limit: ``max_completion_tokens`` or ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def stop_list(self) -> list[str]:
        """``stop`` as a list (empty when unset)."""
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def upstream_body(self, model: str) -> dict[str, Any]:
        """The JSON body for an HTTP backend: unset fields dropped, extras kept,
        ``model`` replaced by the backend's own name, bitrate's options removed."""
        body = self.model_dump(mode="json", exclude_unset=True, by_alias=True)
        body.pop("bitrate", None)
        body["model"] = model
        return body

    def upstream_json(self, model: str, *, stream: bool) -> bytes:
        """:meth:`upstream_body` encoded, with ``stream`` forced and ``stream_options`` kept only
        on a stream (OpenAI rejects it otherwise): one pass in pydantic-core, straight to bytes
        (a third of the cost of dumping to a dict and encoding that)."""
        exclude = _UPSTREAM_OWN if stream else _UPSTREAM_OWN_PLAIN
        rest = _request_json(self, exclude_unset=True, by_alias=True, exclude=exclude)
        head = b'{"model":%s,"stream":%s' % (orjson.dumps(model), b"true" if stream else b"false")
        return head + b"}" if rest == b"{}" else head + b"," + rest[1:]


_request_json = ChatRequest.__pydantic_serializer__.to_json
_UPSTREAM_OWN = {"bitrate", "model", "stream"}
"""Fields :meth:`ChatRequest.upstream_json` writes itself (or drops: ``bitrate``)."""
_UPSTREAM_OWN_PLAIN = {*_UPSTREAM_OWN, "stream_options"}


# -------------------------------------------------------------------- response


class Usage(WireModel):
    prompt_tokens: int = 0
    """Tokens in the prompt."""
    completion_tokens: int = 0
    """Tokens generated."""
    total_tokens: int = 0
    """Their sum."""


class TopLogprob(WireModel):
    token: str
    """The token's text."""
    logprob: float
    """Its natural-log probability."""
    bytes: list[int] | None = None
    """UTF-8 bytes of the token."""


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)
    """The most likely alternatives at this position."""


class ChoiceLogprobs(WireModel):
    content: list[TokenLogprob] | None = None
    """One entry per generated token."""


class ResponseMessage(WireModel):
    role: Literal["assistant"] = "assistant"
    """Always ``"assistant"``."""
    content: str | None = None
    """The answer's text."""
    tool_calls: list[ToolCall] | None = None
    """Tool calls the model made."""


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class Choice(WireModel):
    index: int = 0
    """Position of this choice."""
    message: ResponseMessage
    """The generated message."""
    finish_reason: FinishReason | None = "stop"
    """Why generation ended: a stop condition, the token limit, or a tool call."""
    logprobs: ChoiceLogprobs | None = None
    """Token log-probabilities when requested."""


def new_completion_id() -> str:
    """A fresh ``chatcmpl-...`` id."""
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


class ChatCompletion(WireModel):
    """A non-streaming answer."""

    id: str = Field(default_factory=new_completion_id)
    """Unique id of the completion."""
    object: Literal["chat.completion"] = "chat.completion"
    """Always ``"chat.completion"``."""
    created: int = Field(default_factory=lambda: int(time.time()))
    """Unix time of creation."""
    model: str
    """The model that answered."""
    choices: list[Choice]
    """The generated choices."""
    usage: Usage | None = None
    """Token counts."""


class Delta(WireModel):
    role: Literal["assistant"] | None = None
    """Set on a choice's first chunk."""
    content: str | None = None
    """The next piece of text."""
    tool_calls: list[dict[str, Any]] | None = None
    """Pieces of tool calls."""


class ChunkChoice(WireModel):
    index: int = 0
    """Which choice this piece belongs to."""
    delta: Delta
    """The new piece."""
    finish_reason: FinishReason | None = None
    """Set on the choice's last chunk."""
    logprobs: ChoiceLogprobs | None = None
    """Log-probabilities of this piece's tokens when requested."""


class ChatCompletionChunk(WireModel):
    """One server-sent event of a streaming answer."""

    id: str
    """Same id for every chunk of one answer."""
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    """Always ``"chat.completion.chunk"``."""
    created: int = Field(default_factory=lambda: int(time.time()))
    """Unix time of creation."""
    model: str
    """The model that answers."""
    choices: list[ChunkChoice] = Field(default_factory=list)
    """Pieces; empty on the final usage chunk."""
    usage: Usage | None = None
    """Token counts, on the final chunk when ``include_usage`` was asked."""


# ----------------------------------------------------------------------- error


class ErrorDetail(WireModel):
    message: str
    """What went wrong, for a human."""
    type: str
    """``invalid_request_error``, ``authentication_error``, ``not_found_error``,
    ``rate_limit_error``, ``upstream_error``, ``timeout_error`` or ``internal_error``."""
    param: str | None = None
    """The request field at fault, when one is."""
    code: str | None = None
    """A stable machine-readable code."""


class ErrorBody(WireModel):
    """The OpenAI error envelope: ``{"error": {...}}``."""

    error: ErrorDetail
    """The error."""
