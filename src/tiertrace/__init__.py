"""tiertrace: OpenTelemetry for three-tier memory — Redis (L1), PostgreSQL (L2), Chroma (L3).

Quickstart::

    import tiertrace
    tiertrace.init(exporter="prometheus")      # or "otlp" (default), "console", "none"

    # ... your code using redis, psycopg and chromadb, unchanged ...

    snap = tiertrace.stats()
    print(snap["window"]["served_by"], snap["window"]["cache_effectiveness"])

Every access to a tier becomes a span and a point of ``tiertrace.access.duration`` with tier,
hit and cost; accesses made to answer one query are grouped into a lookup (which tier served
it, how long the fall-through took, what it cost). See the module documentation of
`tiertrace._core.tiers` (tiers and costs), `tiertrace._instrument.redis.instrumentor`, `tiertrace._instrument.psycopg.instrumentor`,
`tiertrace._instrument.chroma.instrumentor` (what is recorded per client), `tiertrace._lookups.grouping` (lookups),
`tiertrace._lookups.events` (lookup telemetry and ``on_access``), `tiertrace._runtime.stats` (``stats()``),
`tiertrace._runtime.config` (settings and environment variables) and `tiertrace._runtime.providers`
(providers and exporters).
"""

from __future__ import annotations

from typing import Any

from tiertrace._core.errors import ConfigError
from tiertrace._core.recorder import report_fault as _report_fault
from tiertrace._core.tiers import DEFAULT_TIERS, Tier
from tiertrace._instrument.psycopg.instrumentor import PsycopgInstrumentor
from tiertrace._instrument.redis.instrumentor import RedisInstrumentor
from tiertrace._lookups.agent import track_agent
from tiertrace._lookups.grouping import lookup
from tiertrace._memory import AsyncTieredMemory, LookupMetrics, TieredMemory
from tiertrace._runtime.config import Settings
from tiertrace._runtime.handle import Handle, handle, init, shutdown

from ._version import __version__

__all__ = [
    "DEFAULT_TIERS",
    "AsyncTieredMemory",
    "ChromaInstrumentor",
    "ConfigError",
    "Handle",
    "HashingEmbeddingFunction",
    "LookupMetrics",
    "PsycopgInstrumentor",
    "RedisInstrumentor",
    "Settings",
    "Tier",
    "TieredMemory",
    "__version__",
    "flush",
    "handle",
    "init",
    "lookup",
    "on_access",
    "shutdown",
    "stats",
    "suggestions",
    "track_agent",
]

_LAZY = {  # these import chromadb / numpy only when used
    "ChromaInstrumentor": ("tiertrace._instrument.chroma.instrumentor", "ChromaInstrumentor"),
    "HashingEmbeddingFunction": (
        "tiertrace._instrument.chroma.embedding",
        "HashingEmbeddingFunction",
    ),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'tiertrace' has no attribute {name!r}")


def flush() -> None:
    """Close pending lookups and accesses now and flush the exporters (no-op before init)."""
    h = handle()
    if h is not None:
        h.flush()


def stats() -> dict[str, Any]:
    """A snapshot of per-tier and lookup figures (see `tiertrace._runtime.stats`); {} before init()."""
    h = handle()
    if h is None:
        return {}
    try:
        h.grouper.flush(everything=False)
        snap = h.stats.snapshot()
        snap["suggestions"] = [_suggestion_dict(s) for s in suggestions()]
        return snap
    except Exception as fault:
        _report_fault("stats", fault)
        return {}


def suggestions() -> list[Any]:
    """The advisor's current findings, pre-cache suggestions first ([] when it is off)."""
    h = handle()
    if h is None:
        return []
    try:
        return h.suggestions()
    except Exception as fault:
        _report_fault("advisor", fault)
        return []


def on_access(callback: Any) -> Any:
    """Call ``callback(event)`` for every ``memory_tier_access`` event; returns unsubscribe.

    Before ``init()`` the callback is not registered and the returned function does nothing.
    """
    h = handle()
    if h is None:
        return lambda: None
    return h.emitter.subscribe(callback)


def _suggestion_dict(s: Any) -> dict[str, Any]:
    from tiertrace._advisor.findings import SUGGESTION_FIELDS

    return {f: getattr(s, f, None) for f in SUGGESTION_FIELDS}
