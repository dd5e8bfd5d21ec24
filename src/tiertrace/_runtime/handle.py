"""The `Handle`: what one ``init()`` built, and the pieces it wires together.

A handle owns the settings, the providers and instruments (`tiertrace._runtime.providers`),
``stats()`` (`tiertrace._runtime.stats`), the advisor, and the lookup grouper and emitter. The
process state around it (which handle is live, the providers tiertrace installed) is kept by
`tiertrace._runtime.process`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from tiertrace._advisor import Advisor
from tiertrace._core import recorder
from tiertrace._core.metrics import Metrics
from tiertrace._instrument import registry
from tiertrace._lookups.events import Emitter
from tiertrace._lookups.grouping import Grouper, Lookup
from tiertrace._runtime.bridge import Source
from tiertrace._runtime.config import Settings
from tiertrace._runtime.providers import Telemetry, export_timeout_s
from tiertrace._runtime.stats import Stats
from tiertrace._runtime.whatif import make_whatif


class Handle:
    """What ``init()`` returns: the live configuration and its parts.

    Most code never needs it: the module functions (`tiertrace.stats`, `tiertrace.flush`,
    `tiertrace.shutdown` …) act on the live handle. ``handle.settings`` is useful to see what
    ``init()`` resolved from arguments, ``TIERTRACE_*`` variables and defaults.

    Attributes:
        settings: the resolved `Settings` of this ``init()``.
    """

    def __init__(self, settings: Settings, installed: list[Any], source: Source) -> None:
        self.settings = settings
        self.telemetry = Telemetry(settings, installed, source)
        self.stats = Stats(settings, self.telemetry.metrics)
        self.advisor = _make_advisor(settings, self.telemetry.metrics)
        # the TTL what-if: replays sampled L1 reads (None without the advisor or a Redis L1)
        self.whatif = make_whatif(settings, self.stats)
        self._whatif_observe = self.whatif.sim.observe if self.whatif is not None else None
        if self.advisor is not None and self.whatif is not None:
            self.advisor.ttl_curve = self.whatif.rows
        self.emitter = Emitter(self.telemetry, self.advisor, settings.single_access_events)
        self.grouper = Grouper(
            self.emitter.close,
            settings.implicit_lookups,
            settings.implicit_window_s,
            self._observe,
            self._single_path(),
            self.emitter,
            functools.partial(recorder.count, self.telemetry.metrics),
        )
        self.instrumentors: list[Any] = []
        self.auto = False  # started by an instrumentor without init()
        self.on_shutdown: Callable[[], None] | None = None  # set by the process that owns it
        self._suggested: tuple[float, list[Any]] = (-1.0, [])

    def suggestions(self, max_age_s: float = 0.0) -> list[Any]:
        """The advisor's findings; ``max_age_s`` allows a cached answer (they cost ~1 ms)."""
        if self.advisor is None:
            return []
        self.grouper.drain()
        now = time.monotonic()
        at, found = self._suggested
        if now - at > max_age_s:
            found = list(self.advisor.suggestions())
            self._suggested = (now, found)
        return found

    def _observe(self, acc: recorder.Access) -> None:
        if self.advisor is not None:
            self.advisor.observe_access(
                acc.tier.name,
                acc.level,
                acc.pattern,
                acc.key,
                acc.duration_s,
                acc.cost,
                acc.hit,
                not acc.read,
            )
        whatif = self._whatif_observe
        if whatif is not None and acc.level == 1 and acc.error_type is None:
            whatif(acc.key, acc.read, acc.ttl_s, acc.op)

    def _single_path(self) -> Callable[[recorder.Access], None]:
        """What an implicit lookup of one read (an L1 hit, most of the traffic, or a lone
        read nothing joined) does: the access and its lookup are observed together, with no
        `Lookup` built. Its parts are bound once here; it runs once per cache hit or lone read."""
        advisor_alone = self.advisor.observe_alone if self.advisor is not None else None
        emitter = self.emitter
        record = emitter.record_single
        observe, close = self._observe, emitter.close
        handle = self

        def single(acc: recorder.Access) -> None:
            if not emitter.plain:
                observe(acc)
                close(Lookup(False, first=acc))
                return
            cost = acc.cost
            if advisor_alone is not None:
                advisor_alone(acc.tier.name, acc.level, acc.pattern, acc.key, acc.duration_s,
                              cost, acc.hit)  # fmt: skip
            whatif = handle._whatif_observe  # read each time: it can be switched off
            if whatif is not None and acc.level == 1 and acc.error_type is None:
                whatif(acc.key, True, acc.ttl_s, acc.op)
            record(acc, cost)

        return single

    def close_pending(self) -> None:
        """Close every pending lookup and psycopg access with what is known now."""
        registry.flush_pending()
        self.grouper.flush(everything=True)

    def flush(self) -> None:
        """Close every pending lookup and access, and flush the exporters' queues."""
        self.close_pending()
        self.telemetry.flush(export_timeout_s())

    def shutdown(self) -> None:
        """Same as `tiertrace.shutdown()`."""
        if self.on_shutdown is not None:
            self.on_shutdown()


def _make_advisor(settings: Settings, metrics: Metrics) -> Advisor | None:
    if not settings.advisor:
        return None
    return Advisor(
        source=metrics.totals,  # its per-tier and served-by sums: the aggregation's counts
        window_s=settings.advisor_window_s,
        capacity=settings.advisor_capacity,
        min_accesses=settings.advisor_min_accesses,
        on_error=lambda exc: recorder.report_fault("advisor", exc),
        l1_hit_rate_target=settings.target_l1_hit_rate,
        cache_effectiveness_target=settings.target_cache_effectiveness,
    )
