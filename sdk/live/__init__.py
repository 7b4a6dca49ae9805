"""Live safety: the profile's promise checked on production traffic.

- :class:`LiveMonitor` (``sdk.live.monitor``): one route's monitor for one category, fed graded
  pairs ``(s, f)``; an anytime-valid test of "loss <= max_loss" with sticky demotion.
- :class:`MonitorBoard` (``sdk.live.board``): a route's monitors by category, with the log of
  verdict changes (what ``bitrate profile live --replay`` prints).
- :class:`ObservationStore` (``sdk.live.store``): observations and shared monitor records, in
  SQLite or PostgreSQL (:func:`open_store`); :class:`LiveConfig` is the policy's ``live:`` section.
- :class:`ShadowConfig` (``sdk.live.shadow_config``): a route's ``shadow:`` section.

The gateway's side, imported from their modules (they import the policy, which imports this
package): ``sdk.live.graders`` (a live pair graded without a reference), ``sdk.live.shadow``
(one route's shadow traffic), ``sdk.live.ledger`` (the monitors kept in step with the store
across replicas) and ``sdk.live.runtime`` (what the engine holds; ``docs/live.md``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdk.live.board import MonitorBoard, VerdictChange
    from sdk.live.config import LiveConfig
    from sdk.live.monitor import STATE_VERSION, LiveMonitor, LiveSnapshot, MonitorSettings
    from sdk.live.records import Direction, MonitorRecord, Observation, prompt_hash
    from sdk.live.shadow_config import ShadowConfig
    from sdk.live.store import ObservationStore, PostgresStore, SQLiteStore, open_store

# The monitor needs numpy: names load on first use, so a policy that imports ``sdk.live.config``
# (every policy does) keeps routing free of numpy.
_WHERE = {
    "MonitorBoard": "sdk.live.board",
    "VerdictChange": "sdk.live.board",
    "LiveConfig": "sdk.live.config",
    "STATE_VERSION": "sdk.live.monitor",
    "LiveMonitor": "sdk.live.monitor",
    "LiveSnapshot": "sdk.live.monitor",
    "MonitorSettings": "sdk.live.monitor",
    "Direction": "sdk.live.records",
    "MonitorRecord": "sdk.live.records",
    "Observation": "sdk.live.records",
    "prompt_hash": "sdk.live.records",
    "ShadowConfig": "sdk.live.shadow_config",
    "ObservationStore": "sdk.live.store",
    "PostgresStore": "sdk.live.store",
    "SQLiteStore": "sdk.live.store",
    "open_store": "sdk.live.store",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'sdk.live' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


__all__ = [
    "STATE_VERSION",
    "Direction",
    "LiveConfig",
    "LiveMonitor",
    "LiveSnapshot",
    "MonitorBoard",
    "MonitorRecord",
    "MonitorSettings",
    "Observation",
    "ObservationStore",
    "PostgresStore",
    "SQLiteStore",
    "ShadowConfig",
    "VerdictChange",
    "open_store",
    "prompt_hash",
]
