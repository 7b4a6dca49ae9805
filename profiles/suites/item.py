"""One probe item and the suite that holds them.

The JSONL item format (one object a line) is the contract every loader produces:

- ``id`` (string, unique in the suite): stable name of the item.
- ``category`` (string): the task category the profile reports on.
- ``messages`` (list of OpenAI chat messages) **or** ``prompt`` (string, sent as one
  user message): exactly one of the two.
- ``reference`` (string, number, list or null): the expected answer; a list means
  "any of these"; null when the item is graded by agreement with the frontier.
- ``grader`` (string, default ``"exact"``): name of a grader in
  :data:`profiles.graders.GRADERS`.
- ``grader_args`` (object, optional): keyword arguments of that grader.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sdk.protocol import ChatMessage, text_of

__all__ = ["Item", "Suite", "suite_hash"]


class Item(BaseModel):
    """One probe: what to ask, which category it measures, and how to grade it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    """Stable name of the item, unique in its suite."""
    category: str = Field(min_length=1)
    """Task category the profile reports on."""
    messages: list[ChatMessage] | None = None
    """The conversation to send (OpenAI chat messages); exclusive with ``prompt``."""
    prompt: str | None = None
    """A single user message; exclusive with ``messages``."""
    reference: str | float | int | list[str | float | int] | None = None
    """Expected answer; a list means any of these; null for agreement grading."""
    grader: str = "exact"
    """Name of the grader (see ``profiles.graders.GRADERS``)."""
    grader_args: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of the grader."""

    @model_validator(mode="after")
    def _one_of_prompt_or_messages(self) -> Item:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of 'messages' and 'prompt'")
        return self

    def chat_messages(self) -> list[ChatMessage]:
        """The messages to send: ``messages`` or ``prompt`` as one user turn."""
        if self.messages is not None:
            return list(self.messages)
        return [ChatMessage(role="user", content=self.prompt)]

    @property
    def prompt_text(self) -> str:
        """The user messages' text joined by blank lines (``prompt`` itself when given)."""
        if self.prompt is not None:
            return self.prompt
        return "\n\n".join(text_of(m) for m in self.chat_messages() if m.role == "user")

    def canonical(self) -> dict[str, Any]:
        """A JSON-ready form with defaults filled in, used for hashing."""
        return self.model_dump(mode="json", exclude_none=True)


def suite_hash(items: list[Item]) -> str:
    """Hex SHA-256 over the canonical JSON of the items, in order."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps(item.canonical(), sort_keys=True, separators=(",", ":")).encode())
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass(frozen=True)
class Suite:
    """Loaded items with the name and hash a profile records."""

    name: str
    """What the user passed (``tiny``, ``gsm8k:PATH@50``, ...), joined with ``+``."""
    items: list[Item] = field(default_factory=list)
    """The items, in file order."""

    @property
    def hash(self) -> str:
        """Hash of the canonical items (see :func:`suite_hash`)."""
        return suite_hash(self.items)

    @property
    def categories(self) -> list[str]:
        """Categories in order of first appearance."""
        return list(dict.fromkeys(item.category for item in self.items))
