"""A memo bounded by entries and by bytes, for caches whose keys a caller can influence.

The engine's decision memo and the gateway's encoded-header cache are keyed by values that
carry caller-chosen text (a task hint becomes the decision's task and part of its reason).
An entry bound alone lets a caller choose how large each entry is, so each cache is bounded
twice: at most ``max_entries`` entries and at most ``max_bytes`` bytes, the size of an entry
being estimated by a function the cache is given (once, when the entry is stored).

Eviction is first in, first out: a hit is one C-level dict lookup (``get`` is the underlying
``OrderedDict.get``), and only a miss pays for the bookkeeping. An entry larger than
``max_bytes`` on its own is never stored.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["BoundedCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """A FIFO memo holding at most ``max_entries`` entries and about ``max_bytes`` bytes."""

    def __init__(self, max_entries: int, max_bytes: int, size: Callable[[K, V], int]):
        """``size(key, value)``: the estimated bytes an entry holds (its strings and objects)."""
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._size = size
        self._values: OrderedDict[K, V] = OrderedDict()
        self._costs: dict[K, int] = {}
        self.bytes = 0
        """The estimated bytes held now."""
        self.get: Callable[[K], V | None] = self._values.get
        """The value stored for a key, or ``None`` (the dict's own ``get``: no Python frame)."""

    def __len__(self) -> int:
        return len(self._values)

    def put(self, key: K, value: V) -> None:
        """Store ``value`` under ``key``, first evicting the oldest entries until it fits."""
        cost = self._size(key, value)
        if cost > self.max_bytes:
            return
        self._discard(key)
        while self._values and (len(self._values) >= self.max_entries or self.bytes + cost > self.max_bytes):
            oldest, _ = self._values.popitem(last=False)
            self.bytes -= self._costs.pop(oldest)
        self._values[key] = value
        self._costs[key] = cost
        self.bytes += cost

    def clear(self) -> None:
        """Drop every entry."""
        self._values.clear()
        self._costs.clear()
        self.bytes = 0

    def _discard(self, key: K) -> None:
        cost = self._costs.pop(key, None)
        if cost is not None:
            del self._values[key]
            self.bytes -= cost
