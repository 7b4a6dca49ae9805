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

from sdk.live.board import MonitorBoard, VerdictChange
from sdk.live.config import LiveConfig
from sdk.live.monitor import STATE_VERSION, LiveMonitor, LiveSnapshot, MonitorSettings
from sdk.live.records import Direction, MonitorRecord, Observation, prompt_hash
from sdk.live.shadow_config import ShadowConfig
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
    "ShadowConfig",
    "VerdictChange",
    "open_store",
    "prompt_hash",
]
