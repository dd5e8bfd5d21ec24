"""Access span attributes written straight into the OpenTelemetry SDK's span.

The SDK cleans every attribute given to a span (type checks, string truncation, a lock), on
every call: the nine to thirteen attributes of an access span cost about as much as the bare
span itself (`benchmarks/RESULTS.md`, "Above the span it must make"). An access's start
attributes are the same dict for every access of a (tier, operation, target), so tiertrace
has the SDK clean that dict once, with the span limits of the tracer's provider, and writes
the cleaned values into each span's attribute store; the result attributes (``tiertrace.hit``,
``db.response.returned_rows``, key counts) are booleans and integers, which cleaning keeps as
they are. What the span exports is exactly what the SDK would have stored.

This applies only where nothing can tell the difference:

* the tracer is the SDK's own, and its spans keep their attributes where this version of the
  SDK keeps them (checked once on a throw-away span);
* the sampler is one of the SDK's built-in ones, which decide without looking at attributes
  (always on or off, trace-id ratio, parent-based over those): a sampler of your own gets the
  start attributes as before, so it can sample on ``tiertrace.tier`` and the rest;
* every span processor is the SDK's batch or simple processor, which do nothing when a span
  starts: a processor of your own sees the attributes in ``on_start`` as before (checked again
  whenever the provider's processors change);
* the span attribute limit leaves room for every attribute of an access.

Anywhere else, the attributes go through the SDK's public calls, with the same result.

An access span the sampler would drop is not started at all (`dropper`): the SDK's built-in
samplers decide from the parent span alone (always off, parent-based with an unsampled parent,
a trace-id ratio of 0), so tiertrace can tell before starting it that the SDK would only hand
back a non-recording span, which no processor sees and nothing exports; an access span is never
the current span, so nothing can be started under it either. Its metrics are recorded as for
any access. Where the SDK counts the spans it starts (its internal metrics,
``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``), every span is started as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.trace.propagation import _SPAN_KEY as SPAN_KEY

# an access span has at most 17 attributes (DESIGN §2): below this limit the SDK could drop
# some, which only its own calls do right
_ROOM = 32


def _quiet_samplers() -> tuple[type[Any], ...]:
    from opentelemetry.sdk.trace.sampling import StaticSampler, TraceIdRatioBased

    return (StaticSampler, TraceIdRatioBased)


def _ignores_attributes(sampler: Any) -> bool:
    """Whether ``sampler`` decides without looking at the span's attributes."""
    from opentelemetry.sdk.trace.sampling import ParentBased, ParentBasedTraceIdRatio

    if type(sampler) in _quiet_samplers():
        return True
    if type(sampler) in (ParentBased, ParentBasedTraceIdRatio):
        delegates = (
            "_root",
            "_remote_parent_sampled",
            "_remote_parent_not_sampled",
            "_local_parent_sampled",
            "_local_parent_not_sampled",
        )
        return all(_ignores_attributes(getattr(sampler, d, None)) for d in delegates)
    return False


def _quiet_processors() -> tuple[type[Any], ...]:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    return (BatchSpanProcessor, SimpleSpanProcessor)


@cache
def _stores_attributes() -> bool:
    """Whether this SDK's spans keep their attributes in ``_attributes._dict`` (a throw-away
    span, on a provider of its own; once per process)."""
    from opentelemetry.sdk.trace import TracerProvider

    span: Any = TracerProvider(shutdown_on_exit=False).get_tracer("check").start_span("check")
    store = getattr(getattr(span, "_attributes", None), "_dict", None)
    if type(store) is not dict:
        return False
    store["check"] = 1
    return dict(span.attributes or {}) == {"check": 1}


class DirectAttributes:
    """How access spans of one SDK tracer get their attributes (see the module's docstring).

    `vet` builds it, or returns None where the tracer's spans must get their attributes
    through the SDK's calls.
    """

    __slots__ = ("_max_length", "_processor", "_seen", "starts")

    def __init__(self, processor: Any, max_length: int | None) -> None:
        self._processor = processor
        self._max_length = max_length
        self._seen: object = None  # the processors `starts` was decided for
        self.starts = False

    def clean(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """``attrs`` as the SDK stores them on a span of this tracer."""
        return dict(BoundedAttributes(None, attrs, immutable=False, max_value_len=self._max_length))

    def start_direct(self) -> bool:
        """Whether a span's start attributes may be written after the SDK started it: no span
        processor looks at a span when it starts (decided again when the processors change)."""
        processors = getattr(self._processor, "_span_processors", None)
        if processors is not self._seen:
            self._seen = processors
            self.starts = processors is not None and all(
                type(p) in _quiet_processors() for p in processors
            )
        return self.starts


def vet(tracer: Any) -> DirectAttributes | None:
    """The direct way for ``tracer``'s access spans, or None where only the SDK's calls fit."""
    try:
        from opentelemetry.sdk.trace import Tracer
    except ImportError:  # pragma: no cover - the SDK is a dependency
        return None
    if type(tracer) is not Tracer or not _ignores_attributes(getattr(tracer, "sampler", None)):
        return None
    limits = getattr(tracer, "_span_limits", None)
    room = getattr(limits, "max_span_attributes", None)
    if limits is None or (room is not None and room < _ROOM) or not _stores_attributes():
        return None
    processor = getattr(tracer, "span_processor", None)
    return DirectAttributes(processor, getattr(limits, "max_span_attribute_length", None))


def _always_drops(sampler: Any) -> bool:
    """Whether ``sampler`` (one of the SDK's) drops every span, whatever its trace id."""
    from opentelemetry.sdk.trace.sampling import Decision, StaticSampler, TraceIdRatioBased

    if type(sampler) is StaticSampler:
        return getattr(sampler, "_decision", None) is Decision.DROP
    # a ratio of 0 (``OTEL_TRACES_SAMPLER=traceidratio``, argument 0): no trace id is below it
    return type(sampler) is TraceIdRatioBased and getattr(sampler, "bound", None) == 0


Dropper = Callable[[Context], bool]


def dropper(tracer: Any) -> Dropper | None:
    """A test that tells, from an access's context, that ``tracer`` would drop its span (see
    the module's docstring); None where that cannot be known before the span starts.

    Always off: every span. Parent-based (the SDK's default sampler): the delegate its parent
    selects, when that delegate drops everything (always off for an unsampled parent, by
    default; the root sampler when there is no valid parent).
    """
    try:
        from opentelemetry.sdk.trace import Tracer
        from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
        from opentelemetry.sdk.trace.sampling import ParentBased, ParentBasedTraceIdRatio
    except ImportError:  # pragma: no cover - an SDK without these: start every span
        return None
    counted = type(getattr(tracer, "_tracer_metrics", None)) is not NoOpTracerMetrics
    if type(tracer) is not Tracer or counted:  # the SDK counts the spans it starts
        return None
    sampler = getattr(tracer, "sampler", None)
    if _always_drops(sampler):
        return _drops_all
    if type(sampler) not in (ParentBased, ParentBasedTraceIdRatio):
        return None
    root = _always_drops(getattr(sampler, "_root", None))
    # [is_remote][sampled]: whether the delegate for such a parent drops every span
    flags = ("not_sampled", "sampled")
    parents = tuple(
        tuple(_always_drops(getattr(sampler, f"_{where}_parent_{flag}", None)) for flag in flags)
        for where in ("local", "remote")
    )
    if not root and not any(any(row) for row in parents):
        return None

    # the last parent seen and the answer for it (a span's context never changes): the accesses
    # of one request share their parent; one tuple, replaced whole, so threads never mix them
    last: list[tuple[object, bool]] = [(None, root)]

    def drops(ctx: Context) -> bool:
        parent: Any = ctx.get(SPAN_KEY)
        if parent is None:
            return root
        seen = last[0]
        if parent is seen[0]:
            return seen[1]
        found = parent.get_span_context()
        answer = root
        if found.is_valid:
            answer = parents[found.is_remote][found.trace_flags.sampled] is True
        last[0] = (parent, answer)
        return answer

    return drops


def _drops_all(_ctx: Context) -> bool:
    return True


def drops_every_span(tracer: Any) -> bool:
    """Whether ``tracer`` drops every span it starts, whatever its parent (always off), and
    nothing counts the spans it starts: then tiertrace needs no tracer at all."""
    return dropper(tracer) is _drops_all
