"""Live safety: the profile's promise checked on production traffic.

- :class:`LiveMonitor` (``sdk.live.monitor``): one route's monitor for one category, fed graded
  pairs ``(s, f)``; an anytime-valid test of "loss <= max_loss" with sticky demotion.
- :class:`MonitorBoard` (``sdk.live.board``): a route's monitors by category, with the log of
  verdict changes (what ``bitrate profile live --replay`` prints).
- :class:`ObservationStore` (``sdk.live.store``): observations and shared monitor records, in
  SQLite or PostgreSQL (:func:`open_store`); :class:`LiveConfig` is the policy's ``live:`` section.
"""

from sdk.live.board import MonitorBoard, VerdictChange
from sdk.live.config import LiveConfig
from sdk.live.monitor import STATE_VERSION, LiveMonitor, LiveSnapshot, MonitorSettings
from sdk.live.records import Direction, MonitorRecord, Observation, prompt_hash
from sdk.live.store import ObservationStore, PostgresStore, SQLiteStore, open_store

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
    "VerdictChange",
    "open_store",
    "prompt_hash",
]
