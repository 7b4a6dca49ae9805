"""Chat-format training data: the OpenAI fine-tuning JSONL shape, read and tokenised.

One conversation a line::

    {"messages": [{"role": "user", "content": "sort: dbca"}, {"role": "assistant", "content": "abcd"}]}

Every line needs at least one ``assistant`` message, the last message being one. The
conversation is rendered with the base model's own chat template; the loss is on the
assistant turns' tokens only (each turn's content and whatever the template closes it with,
its end-of-turn token included, so the model learns to stop). An assistant turn's tokens are
what the template adds between the conversation up to that turn with a generation prompt and
the conversation through that turn; a template whose rendering of a prefix is not a prefix of
the whole (it rewrites earlier turns) is refused, as is a conversation longer than the
context (dropped and counted, never cut: a cut answer would teach the model to stop early).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdk.errors import ConfigError

__all__ = ["IGNORE", "ChatExample", "TokenisedData", "read_chat_jsonl", "tokenise"]

IGNORE = -100
"""Label of a token the loss skips (the prompt's, and padding)."""
_ROLES = frozenset({"system", "user", "assistant", "developer", "tool"})


@dataclass(frozen=True, slots=True)
class ChatExample:
    """One training conversation."""

    messages: list[dict[str, Any]]
    """OpenAI chat messages (``role``, ``content`` as text); the last one is the assistant's."""
    category: str | None = None
    """The task category, when the line carries one (``metadata.category``); for counts only."""


def _message(raw: object, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict) or raw.get("role") not in _ROLES:
        raise ConfigError(
            f"a message must be an object with a chat role ({', '.join(sorted(_ROLES))})",
            location=where,
            key="messages",
        )
    content = raw.get("content")
    if isinstance(content, list):  # content parts: keep the text parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise ConfigError("a message's content must be text", location=where, key="messages")
    return {"role": raw["role"], "content": content}


def _example(line: str, where: str) -> ChatExample:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not JSON: {exc.msg}", location=where) from exc
    raw = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(raw, list) or not raw:
        raise ConfigError("each line needs a non-empty 'messages' list", location=where, key="messages")
    messages = [_message(m, where) for m in raw]
    if messages[-1]["role"] != "assistant":
        raise ConfigError("the last message must be the assistant's answer", location=where, key="messages")
    metadata = row.get("metadata")
    category = metadata.get("category") if isinstance(metadata, dict) else None
    return ChatExample(messages, category if isinstance(category, str) else None)


def read_chat_jsonl(path: str | Path) -> list[ChatExample]:
    """The conversations of a chat JSONL file (blank lines skipped); ``ConfigError`` naming the
    file and line on the first bad one."""
    source = Path(path)
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read training data: {exc.strerror or exc}", location=str(source)) from exc
    examples = [_example(line, f"{source}:{n}") for n, line in enumerate(lines, 1) if line.strip()]
    if not examples:
        raise ConfigError("no training conversation in the file", location=str(source))
    return examples


@dataclass
class TokenisedData:
    """Token ids and labels (``IGNORE`` outside the assistant turns), one row per kept example."""

    input_ids: list[list[int]] = field(default_factory=list)
    labels: list[list[int]] = field(default_factory=list)
    dropped: int = 0
    """Conversations longer than the context (left out)."""
    categories: Counter[str] = field(default_factory=Counter)
    """Kept conversations per category (those without one count as ``-``)."""

    def __len__(self) -> int:
        return len(self.input_ids)

    def rows(self) -> list[dict[str, list[int]]]:
        """One ``{"input_ids", "labels"}`` dict per example (what the trainer's dataset holds)."""
        return [{"input_ids": i, "labels": lab} for i, lab in zip(self.input_ids, self.labels, strict=True)]


def _ids(tokenizer: Any, messages: list[dict[str, Any]], generation_prompt: bool) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _labelled(tokenizer: Any, messages: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """The conversation's ids and labels: each assistant turn's tokens labelled, the rest IGNORE."""
    ids: list[int] = []
    labels: list[int] = []
    for turn, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _ids(tokenizer, messages[:turn], generation_prompt=True)
        through = _ids(tokenizer, messages[: turn + 1], generation_prompt=False)
        if through[: len(before)] != before or before[: len(ids)] != ids:
            raise ConfigError(
                "the chat template renders an earlier part of the conversation differently once "
                "later turns are added; cannot tell the assistant's tokens apart"
            )
        labels += [IGNORE] * (len(before) - len(ids)) + through[len(before) :]
        ids = through
    return ids, labels


def tokenise(examples: list[ChatExample], tokenizer: Any, max_length: int | None) -> TokenisedData:
    """Render and tokenise ``examples`` with ``tokenizer``'s chat template (see the module
    docstring); conversations over ``max_length`` tokens are dropped and counted."""
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("the base model's tokenizer has no chat template (training data is chat-format)")
    data = TokenisedData()
    for example in examples:
        ids, labels = _labelled(tokenizer, example.messages)
        if max_length is not None and len(ids) > max_length:
            data.dropped += 1
            continue
        data.input_ids.append(ids)
        data.labels.append(labels)
        data.categories[example.category or "-"] += 1
    return data
