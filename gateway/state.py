"""What one gateway app holds while it runs, built once at startup (no per-request policy work)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.auth import ApiKeys
from gateway.deadlines import Deadlines
from gateway.metrics import GatewayMetrics
from gateway.readiness import HealthProbe, readiness
from sdk.bounded import BoundedCache
from sdk.decision import Decision
from sdk.headers import ascii_header, route_headers
from sdk.policy import Policy, ServerSettings

if TYPE_CHECKING:
    from gateway.sse_response import SSEResponse

__all__ = ["Gateway", "ascii_header", "route_headers"]


_HEADER_CACHE = 4096
"""Most decisions whose headers are kept encoded (per-prompt decisions vary; the oldest leave first)."""
_HEADER_CACHE_BYTES = 4 << 20
"""Most bytes of encoded headers kept: the task and reason in them may come from a caller's hint."""
_HEADER_ENTRY_BYTES = 512
"""An entry's objects apart from its header bytes (the list, its tuples, the decision)."""

RawHeaders = list[tuple[bytes, bytes]]


def _raw_headers_bytes(_decision: Decision, raw: RawHeaders) -> int:
    return _HEADER_ENTRY_BYTES + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in raw)


def _header_cache() -> BoundedCache[Decision, RawHeaders]:
    return BoundedCache(_HEADER_CACHE, _HEADER_CACHE_BYTES, _raw_headers_bytes)


def _model_entry(name: str, kind: str, created: int) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": "bitrate",
        "bitrate": {"kind": kind},
    }


@dataclass(slots=True)
class Gateway:
    """The engine and everything the routes need, resolved once."""

    engine: Any
    """The ``sdk.engine.Engine`` served."""
    policy: Policy
    """The policy the engine runs."""
    settings: ServerSettings
    """Gateway settings (the policy's ``server`` unless overridden)."""
    keys: ApiKeys
    """Accepted API keys."""
    metrics: GatewayMetrics
    """This app's Prometheus series."""
    health: HealthProbe
    """The backends' health, checked in the background (``/readyz``)."""
    models_body: bytes = b""
    """``GET /v1/models``, encoded once at startup."""
    model_bodies: Mapping[str, bytes] = field(default_factory=dict)
    """``GET /v1/models/{name}`` bodies, encoded once at startup."""
    deadlines: Deadlines = field(default_factory=Deadlines)
    """``request_timeout`` of the requests in flight."""
    _raw_headers: BoundedCache[Decision, RawHeaders] = field(default_factory=_header_cache)

    def raw_route_headers(self, decision: Decision) -> RawHeaders:
        """:func:`route_headers` as ASGI header pairs, built once per decision (the engine
        memoises decisions, so a handful serve all traffic). Callers copy before adding."""
        raw = self._raw_headers.get(decision)
        if raw is None:
            raw = [(k.encode(), v.encode()) for k, v in route_headers(decision).items()]
            self._raw_headers.put(decision, raw)
        return raw

    @classmethod
    def build(cls, engine: Any, policy: Policy, settings: ServerSettings) -> Gateway:
        """Resolve keys and prices; raises ``ConfigError`` for a named but unset key variable."""
        prices = {name: cfg.price for name, cfg in policy.models.items()}
        frontier_of = {name: route.frontier for name, route in policy.routes.items()}
        return cls(
            engine,
            policy,
            settings,
            ApiKeys.from_env(settings.api_keys_env),
            GatewayMetrics(prices, frontier_of),
            HealthProbe(engine.health, settings.health_interval),
        )

    def index_models(self, names: Iterable[str]) -> None:
        """Encode the model list (routes first, then direct models) once."""
        created = int(time.time())
        entries = [_model_entry(n, "route" if n in self.policy.routes else "model", created) for n in names]
        self.models_body = json.dumps({"object": "list", "data": entries}).encode()
        self.model_bodies = {e["id"]: json.dumps(e).encode() for e in entries}

    def index_tasks(self) -> None:
        """Name the tasks each route knows to the metrics, once the engine loaded its routes."""
        self.metrics.name_tasks(self.engine.known_tasks())

    def stream_closed(self, response: SSEResponse) -> None:
        """Count a finished, failed or abandoned stream."""
        decision = response.routed.decision
        end = time.perf_counter()
        if response.first_chunk_at is not None:
            self.metrics.first_token(decision, response.first_chunk_at - response.started)
        self.metrics.answered(decision, response.status, end - response.started, response.usage, stream=True)

    def readiness(self) -> tuple[bool, bytes]:
        """``(ready, body)`` for ``/readyz``, from the last background health check
        (``gateway.readiness``)."""
        circuits = {name: self.engine.circuit.state(name) for name in self.policy.models}
        return readiness(self.policy, self.health.results, circuits)
