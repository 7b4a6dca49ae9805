"""A made-up upstream API key for the leak tests, and the check that no piece of it shows.

The key is made at run time from a seed, so no string shaped like a real key sits in the
repository (where a secret scanner would flag it), yet every run uses the same one.
"""

from __future__ import annotations

import random
import string

from sdk.backends.scrub import MIN_FRAGMENT

__all__ = ["fake_key", "key_fragments"]


def fake_key(seed: str) -> str:
    """A 51-character key of the ``sk-`` shape; its 8-character runs are not found in ordinary text."""
    rng = random.Random(seed)
    return "sk-" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(48))


def key_fragments(key: str, text: str) -> list[str]:
    """The runs of ``MIN_FRAGMENT`` characters of ``key`` that ``text`` holds."""
    runs = {key[i : i + MIN_FRAGMENT] for i in range(len(key) - MIN_FRAGMENT + 1)}
    return sorted(run for run in runs if run in text)
