"""The access recorder: the one hot path every instrumentor shares.

Each client operation on a tier (a Redis command, a PostgreSQL statement, a Chroma call)
becomes one *access*: a span named ``{db.operation.name} {target}`` and one point of the
``tiertrace.access.duration`` histogram; its cost is derived from that histogram's counts when
``tiertrace.cost.usd`` is collected. Reads carry ``tiertrace.hit``; writes do not. Failures set
span status ERROR with ``error.type`` and ``db.response.status_code``; the original exception
reaches your code unchanged.

Cost on the hot path is kept at the SDK's floor:

* an access span the sampler would drop is not started (`tiertrace._core.sdkspans.dropper`);
  the span gets its sampler-relevant attributes at start (tier, level, system, operation,
  collection, cost), from a dict built once per (tier, operation, target); everything else is
  added only when the span is recording, so unsampled spans cost no attribute work; where no
  sampler or span processor looks at them when the span starts, they are cleaned once per set
  and written straight into the SDK's span (`tiertrace._core.sdkspans`); an access span is
  never attached as the current context;
* the metric point goes to an aggregation slot resolved once per (tier, operation, hit, error)
  (`tiertrace._core.aggregation`): no OpenTelemetry instrument call per access; the slot keeps
  the trace and span id of the latest sampled access as its exemplar. The point is counted after
  the access sink (the lookup grouper) saw the access, by the sink itself when it queued the
  access for a batch (`count`);
* metrics never depend on spans: with tracing off the histogram and cost still work.

Coexistence: when another instrumentation of the same client (opentelemetry-instrumentation-
redis / -psycopg, openllmetry's chromadb) already started a span for this call, tiertrace
*enriches* that span (adds its attributes, hit and cost, and renames it) instead of opening a
second one; tiertrace's wrapper always sits innermost (see `tiertrace._core.patching`), so that
span is
there whatever the order of instrumentation: one span per access. ``suppress_instrumentation`` is
honoured: a suppressed call records nothing at all.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from contextvars import ContextVar
from time import perf_counter, time_ns
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as SUPPRESS_KEY
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import (
    INVALID_SPAN,
    NonRecordingSpan,
    Span,
    SpanKind,
    Status,
    StatusCode,
    get_current_span,
)
from opentelemetry.trace.propagation import _SPAN_KEY as SPAN_KEY

from tiertrace._contract.names import (
    DB_COLLECTION,
    DB_OPERATION,
    DB_SYSTEM,
    HIT,
    SPAN_COST,
    TIER,
    TIER_LEVEL,
)
from tiertrace._core.aggregation import Exemplar, HistogramSlot
from tiertrace._core.metrics import Metrics
from tiertrace._core.sdkspans import DirectAttributes, Dropper, dropper, vet
from tiertrace._core.tiers import Tier

_log = logging.getLogger("tiertrace")

FOREIGN_SCOPES = frozenset(
    {
        "opentelemetry.instrumentation.redis",
        "opentelemetry.instrumentation.psycopg",
        "opentelemetry.instrumentation.dbapi",
        "opentelemetry.instrumentation.chromadb",
    }
)
# whether one of those instrumentations is imported (their scope is their module's name: no
# span of theirs can exist before): checked again only when ``sys.modules`` changes size, so
# an access reads the current span only when there may be a foreign one to enrich
_FOREIGN = [-1, False]  # len(sys.modules) when checked, the answer


def _foreign_loaded() -> bool:
    modules = sys.modules
    if len(modules) != _FOREIGN[0]:
        _FOREIGN[:] = [len(modules), any(name in modules for name in FOREIGN_SCOPES)]
    return bool(_FOREIGN[1])


_MAX_ATTR_SETS = 4096


def _context_reader() -> Callable[[], Context]:
    """How an access reads the current context: with OpenTelemetry's default runtime context,
    its context variable's own ``get`` (one C call, where `opentelemetry.context.get_current`
    is two Python frames on the per-call path); with any other (``OTEL_PYTHON_CONTEXT``),
    ``get_current``."""
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if type(runtime) is ContextVarsRuntimeContext and isinstance(var, ContextVar):
        return var.get
    return otel_context.get_current


class Access:
    """One access in flight; instrumentors fill the optional fields, the recorder the rest."""

    __slots__ = (
        "closed",
        "context",
        "duration_s",
        "error_type",
        "exemplar",
        "hit",
        "key",
        "keys_hit",
        "keys_requested",
        "level",
        "op",
        "owned",
        "parent",
        "pattern",
        "read",
        "recording",
        "rows",
        "span",
        "t0",
        "target",
        "tier",
        "ttl_s",
    )

    def __init__(
        self,
        tier: Tier,
        op: str,
        target: str,
        span: Span,
        owned: bool,
        parent: Span | None,
        recording: bool = False,
        context: Context | None = None,
    ) -> None:
        self.tier = tier
        # the span current when the access started (the caller's): given, or read from
        # ``context`` when needed (`caller`)
        self.parent = parent
        self.context = context
        self.level = tier.level
        self.op = op
        self.target = target
        self.span = span
        self.owned = owned
        self.recording = recording  # span.is_recording(), which the caller knows
        self.hit: bool | None = None
        self.error_type: str | None = None
        self.exemplar: Exemplar | None = None  # set when the span was sampled
        self.rows: int | None = None
        self.keys_requested: int | None = None
        self.keys_hit: int | None = None
        self.key: str | None = None
        self.ttl_s: float | None = None  # the TTL a write sets (Redis SET EX …), for the what-if
        self.pattern = target
        self.read = False
        self.duration_s = 0.0
        self.closed = False
        self.t0 = perf_counter()

    @property
    def cost(self) -> float:
        """The access's price, at its tier's prices (read after the call, never on its path)."""
        return self.tier.cost(self.op)

    def caller(self) -> Span:
        """The span that was current when the access started (the caller's)."""
        if self.parent is None:
            self.parent = get_current_span(self.context)
        return self.parent


# where every closed access goes (the lookup grouper): True when it queued the access and will
# `count` it itself
Sink = Callable[[Access], "bool | None"]


class _State:
    """What the recorder writes to; replaced as a whole by init() and shutdown()."""

    def __init__(
        self,
        telemetry: Any = None,
        sink: Sink | None = None,
        settle: Callable[[], None] | None = None,
    ) -> None:
        self.enabled = telemetry is not None
        self.telemetry = telemetry
        self.tracer = telemetry.tracer if telemetry is not None else None
        # where the SDK's span attribute store may be written directly (`tiertrace._core.sdkspans`)
        self.direct: DirectAttributes | None = vet(self.tracer)
        # tells from an access's context that the tracer's sampler would drop its span
        self.drops: Dropper | None = dropper(self.tracer)
        self.metrics: Metrics = telemetry.metrics if telemetry is not None else Metrics()
        self.semconv = self.metrics.semconv
        # SDK instruments, only where tiertrace's aggregation cannot reach the readers
        self.fallback = telemetry.fallback if telemetry is not None else None
        self.sink = sink
        self.settle = settle  # handles what the sink queued
        self.current = _context_reader()
        self.start_sets: dict[tuple[Any, ...], tuple[Extra, Extra, dict[str, Any]]] = {}
        self.faults_logged: set[tuple[str, str]] = set()
        self.capture_keys = "template"
        self.capture_query_text = True
        self.capture_error_messages = False


STATE = _State()


def configure(
    telemetry: Any, sink: Sink | None, settle: Callable[[], None] | None = None
) -> _State:
    """Point the recorder at new telemetry (``None`` turns recording off); ``settle`` handles
    what ``sink`` queued."""
    global STATE
    STATE = _State(telemetry, sink, settle)
    return STATE


def settle() -> None:
    """Handle every access the sink queued, now (an instrumentor calls it where a client's
    work ends, e.g. a psycopg connection closing, so that nothing of it stays queued)."""
    drain = STATE.settle
    if drain is not None:
        drain()  # counts its faults, never raises


def active() -> Context | None:
    """The current context when a call should be recorded now (init() done, not suppressed),
    else None; hand it to `start`, which then reads the current span from it."""
    st = STATE
    if not st.enabled:
        return None
    ctx = st.current()
    return None if ctx.get(SUPPRESS_KEY) else ctx


Extra = dict[str, Any] | None


def start(
    tier: Tier,
    op: str,
    target: str,
    kind: SpanKind,
    extra: Extra = None,
    more: Extra = None,
    ctx: Context | None = None,
) -> Access:
    """Open an access. Call `active()` first; `finish`/`fail` must follow.

    ``extra`` and ``more`` are further span attributes known at start (a statement's text, a
    connection pool's server address); pass the same dict objects every time (cached on the
    statement, and `shared` by all pools or connections with the same values): the merged set
    is then built once and given to the SDK at start.
    """
    st = STATE
    if ctx is None:
        ctx = st.current()
    # `_foreign_loaded` written out for the unchanged case (the per-call path)
    if _FOREIGN[1] if len(sys.modules) == _FOREIGN[0] else _foreign_loaded():
        # `get_current_span` written out: None when there is none
        parent: Any = ctx.get(SPAN_KEY)
        scope = getattr(parent, "instrumentation_scope", None)
        if scope is not None and scope.name in FOREIGN_SCOPES and parent.is_recording():
            parent.update_name(f"{op} {target}" if target else op)
            parent.set_attributes(_start_attributes(st, tier, op, target, extra, more))
            # the caller's span is the one the other instrumentation's span was started under
            caller = getattr(parent, "parent", None)
            return Access(tier, op, target, parent, False, _caller_span(caller), True)
    tracer = st.tracer
    drops = st.drops
    if tracer is None or (drops is not None and drops(ctx)):  # metrics only: no span at all
        return Access(tier, op, target, INVALID_SPAN, True, None, False, ctx)
    # sampler-relevant attributes at start (built once per tier, operation and target)
    name = f"{op} {target}" if target else op
    attrs = _start_attributes(st, tier, op, target, extra, more)
    direct = st.direct
    if direct is not None and direct.start_direct():
        # nothing looks at them before the span has started: cleaned once, written into the
        # SDK span's store (`tiertrace._core.sdkspans`)
        sdk_span: Any = tracer.start_span(name, kind=kind)
        recording = sdk_span.is_recording()
        if recording:
            sdk_span._attributes._dict.update(attrs)
        return Access(tier, op, target, sdk_span, True, None, recording, ctx)
    span = tracer.start_span(name, kind=kind, attributes=attrs)
    return Access(tier, op, target, span, True, None, span.is_recording(), ctx)


def _caller_span(context: Any) -> Span:
    return INVALID_SPAN if context is None else NonRecordingSpan(context)


_SHARED: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
_MAX_SHARED = 256


def shared(attrs: dict[str, Any]) -> dict[str, Any]:
    """The one dict object for these attribute values, to give `start` as ``extra``/``more``.

    An instrumentor builds a client's span attributes (server, database, a collection's call
    shape) once per connection, pool or collection object, and `start` caches the sets merged
    from them by identity. Connections to the same server have the same values: passing the one
    shared dict keeps that cache from growing with every connection a process opens (a
    connection per request, or psycopg's own leak tests, which count live objects across
    repeated identical work). Kept for the first 256 distinct value sets; values must be
    hashable, else ``attrs`` itself is returned.
    """
    try:
        key = tuple(attrs.items())
        found = _SHARED.get(key)
        if found is None and len(_SHARED) < _MAX_SHARED:
            found = _SHARED.setdefault(key, attrs)
    except TypeError:  # an unhashable value
        return attrs
    return attrs if found is None else found


def _start_attributes(
    st: _State, tier: Tier, op: str, target: str, extra: Extra, more: Extra
) -> dict[str, Any]:
    key = (tier.name, op, target, id(extra), id(more))
    cached = st.start_sets.get(key)
    if cached is not None and cached[0] is extra and cached[1] is more:  # ids are reused
        return cached[2]
    attrs = {
        TIER: tier.name,
        TIER_LEVEL: tier.level,
        SPAN_COST: tier.cost(op),
        DB_SYSTEM: tier.system,
        DB_OPERATION: op,
        **(extra or {}),
        **(more or {}),
    }
    if target and tier.system != "redis":
        attrs[DB_COLLECTION] = target
    if st.direct is not None:  # as the SDK stores them, for any path (cleaning is idempotent)
        attrs = st.direct.clean(attrs)
    if len(st.start_sets) < _MAX_ATTR_SETS:
        st.start_sets[key] = (extra, more, attrs)
    return attrs


def finish(acc: Access, hit: bool | None = None, duration: float | None = None) -> None:
    """Close an access that returned normally; ``hit`` is None for writes and unknown reads.

    ``duration`` (seconds) is the time since `start` unless given.
    """
    st = STATE
    try:
        acc.hit = hit
        acc.duration_s = duration = perf_counter() - acc.t0 if duration is None else duration
        acc.closed = True
        if acc.recording:
            _end_span(st, acc, duration)
        if st.semconv is not None:
            st.semconv.histogram((acc.tier.system, acc.op, acc.error_type)).record(duration)
        if st.fallback is not None:
            st.fallback.access(acc, duration, _slot(st.metrics, acc).attributes)
        if st.sink is not None:
            try:
                if st.sink(acc):
                    return  # queued: the sink counts it once it has handled it
            except Exception as fault:
                report_fault("lookup", fault)
        # counted after the sink saw it: the advisor reads its per-tier sums from this slot,
        # and whatever a slot holds when the advisor starts a new time bucket belongs to the
        # buckets before (`tiertrace._advisor.recorder`)
        count(st.metrics, acc)
    except Exception as fault:
        report_fault("recorder", fault)


def stop_clock(acc: Access) -> None:
    """Freeze the duration now; the hit is decided later by `finish_later`."""
    acc.duration_s = perf_counter() - acc.t0


def finish_later(acc: Access, hit: bool | None, extra_s: float = 0.0) -> None:
    """Close an access whose clock `stop_clock` froze (psycopg server cursors, pipelines)."""
    finish(acc, hit, acc.duration_s + extra_s)


StatusOf = Callable[[BaseException], "str | None"]


def fail(acc: Access, exc: BaseException, status: StatusOf | None = None) -> None:
    """Close an access whose call raised ``exc`` (the caller re-raises it unchanged).

    ``status`` turns the exception into ``db.response.status_code`` (Redis error prefix,
    SQLSTATE). The span gets status ERROR, ``error.type`` and an ``exception`` event with the
    exception's type. Exception *messages* stay off the span unless
    ``capture_error_messages=True``: client errors quote user data (a duplicate key's value, a
    rejected metadata value), which the privacy defaults never export.
    """
    try:
        acc.error_type = type(exc).__qualname__
        acc.hit = None
        if acc.recording:
            span = acc.span
            detail = str(exc)[:256] if STATE.capture_error_messages else acc.error_type
            span.set_status(Status(StatusCode.ERROR, detail))
            span.set_attribute("error.type", acc.error_type)
            status_code = status(exc) if status is not None else None
            if status_code:
                span.set_attribute("db.response.status_code", status_code)
            if acc.owned:
                event = {"exception.type": f"{type(exc).__module__}.{acc.error_type}"}
                if STATE.capture_error_messages:
                    event["exception.message"] = str(exc)[:256]
                span.add_event("exception", event)
        finish(acc, None)
    except Exception as fault:  # never let our fault replace the user's exception
        report_fault("recorder", fault)


def _end_span(st: _State, acc: Access, duration: float) -> None:
    """The result attributes and the end of a recording access span; its exemplar."""
    span = acc.span
    ctx = span.get_span_context()
    if ctx.trace_flags.sampled:  # the slot takes it when the access is counted
        acc.exemplar = Exemplar(duration, time_ns(), ctx.trace_id, ctx.span_id)
    # booleans and integers, which the SDK stores as given: written into the SDK span's store
    # (`tiertrace._core.sdkspans`), unless the span came from a tracer of another `init()`
    store = None
    if acc.owned and st.direct is not None:
        store = getattr(getattr(span, "_attributes", None), "_dict", None)
    if type(store) is dict:
        if acc.hit is not None:
            store[HIT] = acc.hit
        if acc.rows is not None:
            store["db.response.returned_rows"] = acc.rows
        if acc.keys_requested is not None:
            store["tiertrace.keys.requested"] = acc.keys_requested
            store["tiertrace.keys.hit"] = acc.keys_hit or 0
    else:
        # one call per attribute: `set_attributes` costs more (the SDK cleans the
        # mapping as a nested value)
        if acc.hit is not None:
            span.set_attribute(HIT, acc.hit)
        if acc.rows is not None:
            span.set_attribute("db.response.returned_rows", acc.rows)
        if acc.keys_requested is not None:
            span.set_attribute("tiertrace.keys.requested", acc.keys_requested)
            span.set_attribute("tiertrace.keys.hit", acc.keys_hit or 0)
    if acc.owned:  # a span that does not record has nothing to end
        span.end()


def _slot(metrics: Metrics, acc: Access) -> HistogramSlot:
    key = (acc.tier.name, acc.op, acc.hit, acc.error_type)
    slot = metrics.access.slots.get(key)
    return metrics.access.histogram(key, acc.tier) if slot is None else slot


def count(metrics: Metrics, acc: Access) -> None:
    """Count a closed access in its ``tiertrace.access.duration`` slot of ``metrics``.

    For the sink, which counts the accesses it queued (its call returned True) once it has
    handled them. A sampled access becomes its slot's exemplar.
    """
    # `_slot` written out (once per access)
    key = (acc.tier.name, acc.op, acc.hit, acc.error_type)
    slot = metrics.access.slots.get(key)
    if slot is None:
        slot = metrics.access.histogram(key, acc.tier)
    slot.record(acc.duration_s)
    if acc.exemplar is not None:
        slot.exemplar = acc.exemplar


def report_fault(component: str, exc: BaseException) -> None:
    """Count a fault of tiertrace itself and log it once per (component, type)."""
    st = STATE
    try:
        ident = (component, type(exc).__name__)
        if ident not in st.faults_logged:
            st.faults_logged.add(ident)
            _log.warning("tiertrace: internal fault in %s ignored: %r", component, exc)
        count_fault(component)
    except Exception:  # pragma: no cover - the last line of defence
        pass


def count_fault(component: str) -> None:
    """Count one fault of ``component`` in ``tiertrace.self.errors``, logging nothing.

    For callers that say what happened in their own words (the OTLP delivery guard).
    """
    st = STATE
    try:
        slot = st.metrics.errors.counter(component)
        slot.add(1)
        if st.fallback is not None:
            st.fallback.fault(slot.attributes)
    except Exception:  # pragma: no cover - the last line of defence
        pass
