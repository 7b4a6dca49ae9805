"""Reading a file a user wrote (a policy, a profile) as UTF-8 text.

The one place where ``OSError`` and ``UnicodeDecodeError`` from such a read become a
:class:`~sdk.errors.ConfigError`: one line naming the file, and for a byte that is not UTF-8
(a binary file, another encoding) the line it sits on.
"""

from __future__ import annotations

from pathlib import Path

from sdk.errors import ConfigError

__all__ = ["read_text"]


def read_text(path: Path, what: str) -> str:
    """The text of ``path``; ``ConfigError`` naming the file when it cannot be read or is not UTF-8.
    ``what`` names the file's kind in the message ('policy', 'profile')."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror or exc}", location=str(path)) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        message = f"cannot read {what}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        raise ConfigError(message, location=f"{path}:{line}") from exc
