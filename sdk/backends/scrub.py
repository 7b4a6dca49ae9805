"""Foreign text made safe to show: the API key taken out, then the text cut short.

Upstreams echo what they were sent: the key in an error message ("Incorrect API key
provided: sk-..."), in a header (an ``x-request-id`` built from the request), or cut
short by their own truncation. Every piece of upstream text that reaches one of our
error messages (and so a response body or a log line) goes through :func:`scrub`, in
this order:

0. only the first :data:`MAX_SCANNED` characters are looked at (dropping text never shows
   a secret: a key the drop cut in two is a run caught by step 3);
1. ``Bearer <token>`` becomes ``Bearer ***``, whatever the token;
2. the key becomes ``***`` wherever it appears whole;
3. any run of :data:`MIN_FRAGMENT` or more characters of the key (the prefix an
   upstream's own cut left, a suffix, the middle) becomes ``***``;
4. only then is the text cut to ``limit`` characters,
5. and put on one line (each run of whitespace, newlines included, becomes one space).

Cutting first would leave a prefix of the key that no longer matches it whole.
Step 3 reads no further into the text than the cut keeps.
"""

from __future__ import annotations

import functools
import re

__all__ = ["MAX_MESSAGE", "MIN_FRAGMENT", "scrub", "truncate"]

MAX_MESSAGE = 300
"""Longest upstream text kept in one of our error messages."""

MAX_SCANNED = 65536
"""Most characters of a foreign text looked at (a large error page costs no more than this)."""

MIN_FRAGMENT = 8
"""Shortest run of the key's characters that is taken out when found on its own."""

MASK = "***"
"""What a secret, or a run of it, is replaced with."""

_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"',;)\]}]+")


def truncate(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to ``limit`` characters, with ``...`` when cut."""
    return text if len(text) <= limit else text[:limit] + "..."


def scrub(text: str, secret: str | None = None, limit: int = MAX_MESSAGE) -> str:
    """``text`` without bearer tokens and without ``secret`` or any part of it of
    :data:`MIN_FRAGMENT` characters or more, then cut to ``limit``, on one line
    (see the module docstring)."""
    text = _BEARER.sub(rf"\1 {MASK}", text[:MAX_SCANNED])
    if secret:
        text = text.replace(secret, MASK)
        if len(secret) >= MIN_FRAGMENT:
            text = _without_fragments(text, secret, limit)
    return " ".join(truncate(text, limit).split())


@functools.lru_cache(maxsize=16)
def _fragments(secret: str) -> re.Pattern[str]:
    """Any :data:`MIN_FRAGMENT` consecutive characters of ``secret``."""
    size = MIN_FRAGMENT
    grams = {secret[i : i + size] for i in range(len(secret) - size + 1)}
    return re.compile("|".join(re.escape(g) for g in sorted(grams)))


def _without_fragments(text: str, secret: str, limit: int) -> str:
    """``text`` with each run of ``secret``'s characters that holds a fragment masked, up to
    where ``limit`` characters of the result are decided (the rest is left for the cut)."""
    pattern, out, kept, pos = _fragments(secret), [], 0, 0
    while kept < limit:  # a run that starts before the cut may end up to MIN_FRAGMENT - 1 past it
        match = pattern.search(text, pos, pos + limit - kept + MIN_FRAGMENT - 1)
        if match is None:
            break
        out.append(text[pos : match.start()])
        kept += match.start() - pos + len(MASK)
        out.append(MASK)
        pos = _run_end(text, match.end(), secret, secret.index(match.group()) + MIN_FRAGMENT)
    out.append(text[pos:])
    return "".join(out)


def _run_end(text: str, end: int, secret: str, at: int) -> int:
    """Where the run of ``secret``'s characters that reached ``secret[at]`` at ``text[end]`` stops."""
    while end < len(text) and at < len(secret) and text[end] == secret[at]:
        end, at = end + 1, at + 1
    return end
