"""Closing a lookup: its span, its metric point and the ``memory_tier_access`` event.

Every closed lookup (explicit or implicit) produces:

* a span ``tiertrace.lookup`` (or ``lookup {query_type}``), kind INTERNAL, with
  ``tiertrace.served_by``, ``tiertrace.served_by.level``, ``tiertrace.tiers_tried``,
  ``tiertrace.cost``, ``tiertrace.cache_hit``, ``tiertrace.query_type``,
  ``tiertrace.result_count``, and ``user.id`` / ``gen_ai.agent.id`` when given (never as
  metric labels). An explicit lookup's span is the parent of its access spans; an implicit one
  is built afterwards with the first access's start time and links to the access spans — only
  when it holds more than one access: an implicit lookup of one access (an L1 hit, most of the
  traffic) is fully described by that access's span, and a second span per cache hit would double
  the tracing cost of the hot path. Its metric point and event are emitted all the same;
* a point of ``tiertrace.lookup.duration`` labelled ``tiertrace.served_by``,
  ``tiertrace.served_by.level``, ``tiertrace.cache_hit`` and ``tiertrace.query_type`` (the first
  50 query types, then ``_other``);
* the event ``memory_tier_access``: a span event on the lookup span, an OpenTelemetry log record
  with that event name, and a call of every listener registered with `tiertrace.on_access`::

      def show(event: dict) -> None:
          p = event["payload"]
          print(p["tier_accessed"], p["total_latency_ms"], p["cost_usd"])

      unsubscribe = tiertrace.on_access(show)
      ...
      unsubscribe()

  The body is ``{"event_type": "memory_tier_access", "payload": {"tier_accessed",
  "tier_latencies": {tier: {"latency_ms", "hit"}}, "access_chain": [{"tier", "level",
  "operation", "latency_ms", "hit", "cost", "error"}], "total_latency_ms", "cache_hit",
  "query_type", "result_count", "cost_usd"}}``. A listener that raises is logged and counted in
  ``tiertrace.self.errors``; the lookup is not affected. The payload is built only when someone
  listens (a recording span, an enabled logger, or a listener).

  An implicit lookup of a single access (an L1 hit, or a lone read) emits no log record either:
  at one record per cache hit the logs pipeline would cost more than the cache read itself, and
  the access span and the two metric points already say everything about it. Listeners still
  get it; ``single_access_events=True`` logs these too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from time import time_ns
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, set_span_in_context

from tiertrace._core import recorder as _access
from tiertrace._core.aggregation import Exemplar
from tiertrace._core.recorder import Access
from tiertrace._lookups.grouping import Lookup

EVENT = "memory_tier_access"
MAX_QUERY_TYPES = 50
Listener = Callable[[dict[str, Any]], None]


class Emitter:
    """Turns closed lookups into telemetry and feeds the advisor (``stats()`` reads the
    metric points recorded here)."""

    def __init__(self, telemetry: Any, advisor: Any, single_events: bool = False) -> None:
        self.telemetry = telemetry
        self.advisor = advisor
        self.listeners: list[Listener] = []
        self.query_types: set[str] = set()
        self.slots = telemetry.metrics.lookup.slots  # read directly: one dict lookup per lookup
        self.single_events = single_events
        # a one-access lookup needs nothing but its metric point: no listener and no
        # ``single_access_events`` (then `record_single` is all it takes); kept up to date
        # by `subscribe`
        self.plain = not single_events
        self.lock = threading.Lock()

    def log_enabled(self) -> bool:
        logger = self.telemetry.logger
        return bool(logger.enabled(event_name=EVENT)) if hasattr(logger, "enabled") else True

    def subscribe(self, callback: Listener) -> Callable[[], None]:
        with self.lock:
            self.listeners = [*self.listeners, callback]
            self.plain = False

        def unsubscribe() -> None:
            with self.lock:
                self.listeners = [c for c in self.listeners if c is not callback]
                self.plain = not self.listeners and not self.single_events

        return unsubscribe

    def _query_type(self, value: str | None) -> str | None:
        if value is None or value in self.query_types:
            return value
        with self.lock:
            if len(self.query_types) < MAX_QUERY_TYPES:
                self.query_types.add(value)
                return value
        return "_other"

    def close(self, lk: Lookup) -> None:
        try:
            self._close(lk)
        except Exception as fault:
            _access.report_fault("lookup", fault)

    def record_single(self, acc: Access, cost: float) -> None:
        """The metric point of the implicit lookup of one read: an L1 hit, or a lone read
        nothing joined (served by its tier if it hit, else by ``none``).

        Such a lookup has no span, no log record and no payload (see `plain`): its point is
        recorded here without building a `Lookup`; the advisor is fed by the caller, which
        gives the access's ``cost`` it read once for both.
        """
        try:
            key = (acc.tier.name, acc.level, None) if acc.hit else ("none", 0, None)
            slot = self.slots.get(key)
            if slot is None:
                slot = self.telemetry.metrics.lookup.histogram(key)
            seconds = acc.duration_s
            slot.record(seconds, cost)
            if acc.exemplar is not None:  # the lookup is that access: so is its exemplar
                slot.exemplar = acc.exemplar
            fallback = self.telemetry.fallback
            if fallback is not None:
                fallback.lookup(seconds, slot.attributes)
        except Exception as fault:
            _access.report_fault("lookup", fault)

    def _close(self, lk: Lookup) -> None:
        tel = self.telemetry
        served = lk.served
        served_by = served.tier.name if served is not None else "none"
        level = served.level if served is not None else 0
        cache_hit = level == 1
        seconds = max(lk.t_end - lk.t0, 0.0)
        cost = lk.cost
        query_type = self._query_type(lk.query_type)
        key = (served_by, level, query_type)
        slot = self.slots.get(key)
        if slot is None:
            slot = tel.metrics.lookup.histogram(key)
        if self.advisor is not None and lk.pattern is not None:
            pattern = lk.pattern
            self.advisor.observe_lookup(pattern, lk.key, served_by, level, seconds, cost)
        slot.record(seconds, cost)  # after the advisor saw it: see `tiertrace._advisor.recorder`
        attrs = slot.attributes
        if tel.fallback is not None:
            tel.fallback.lookup(seconds, attrs)
        span = lk.span
        if span is None and len(lk.accesses) > 1 and tel.tracer is not None:
            links = [Link(a.span.get_span_context()) for a in lk.accesses if a.recording]
            # the parent is the span current at the lookup's first access, captured then:
            # never whatever is current now (a later, unrelated call may be)
            parent = set_span_in_context(lk.accesses[0].caller(), Context())
            span = tel.tracer.start_span(
                "tiertrace.lookup",
                context=parent,
                kind=SpanKind.INTERNAL,
                start_time=lk.start_ns,
                links=links,
            )
        recording = span is not None and span.is_recording()
        if recording:
            ctx = span.get_span_context()
            if ctx.trace_flags.sampled:
                slot.exemplar = Exemplar(seconds, time_ns(), ctx.trace_id, ctx.span_id)
        listeners = self.listeners
        log = (self.single_events or lk.explicit or lk.count > 1) and self.log_enabled()
        if not (recording or listeners or log):
            if span is not None:
                span.end()
            return
        body = payload(lk, served_by, seconds, cost, query_type, cache_hit)
        if recording:
            tried = list(dict.fromkeys(a.tier.name for a in lk.accesses))
            span.set_attributes(
                {
                    **attrs,
                    "tiertrace.tiers_tried": tried,
                    "tiertrace.cost": cost,
                    **(
                        {"tiertrace.result_count": lk.result_count}
                        if lk.result_count is not None
                        else {}
                    ),
                    **({"user.id": lk.user_id} if lk.user_id else {}),
                    **({"gen_ai.agent.id": lk.agent_id} if lk.agent_id else {}),
                }
            )
            p = body["payload"]
            span.add_event(
                EVENT,
                {
                    "tier_accessed": served_by,
                    "total_latency_ms": p["total_latency_ms"],
                    "cache_hit": cache_hit,
                    "cost_usd": cost,
                    "access_chain": json.dumps(p["access_chain"]),
                    "tier_latencies": json.dumps(p["tier_latencies"]),
                    **({"query_type": query_type} if query_type else {}),
                    **({"result_count": lk.result_count} if lk.result_count is not None else {}),
                },
            )
        if span is not None:
            span.end(end_time=lk.start_ns + int(seconds * 1e9) if not lk.explicit else None)
        if log:
            tel.logger.emit(event_name=EVENT, body=_clean(body), attributes={"event.name": EVENT})
        for callback in listeners:
            try:
                callback(body)
            except Exception as fault:
                _access.report_fault("listener", fault)


def payload(
    lk: Lookup, served_by: str, seconds: float, cost: float, query_type: str | None, cache_hit: bool
) -> dict[str, Any]:
    chain = []
    latencies: dict[str, dict[str, Any]] = {}
    for a in lk.accesses:
        ms = a.duration_s * 1000
        chain.append(
            {
                "tier": a.tier.name,
                "level": a.level,
                "operation": a.op,
                "latency_ms": ms,
                "hit": a.hit,
                "cost": a.cost,
                "error": a.error_type,
            }
        )
        entry = latencies.setdefault(a.tier.name, {"latency_ms": 0.0, "hit": None})
        entry["latency_ms"] += ms
        if a.hit is not None:
            entry["hit"] = bool(entry["hit"]) or a.hit
    return {
        "event_type": EVENT,
        "payload": {
            "tier_accessed": served_by,
            "tier_latencies": latencies,
            "access_chain": chain,
            "total_latency_ms": seconds * 1000,
            "cache_hit": cache_hit,
            "query_type": query_type,
            "result_count": lk.result_count,
            "cost_usd": cost,
        },
    }


def _clean(value: Any) -> Any:
    """Log bodies may not hold None: drop None values from maps."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
