"""The three service targets of DESIGN §5, defined once.

Each target has the names it goes by in the three places that show it: ``name`` in
``tiertrace.stats()["targets"]`` and ``tiertrace report``, ``setting`` the ``init()`` keyword
that overrides it, ``series`` the constant recording rule ``tiertrace:target:<series>`` the
alerts compare with. ``value`` is in ``unit`` (``1`` for a ratio, ``ms`` for a latency);
:attr:`Target.prometheus_value` is the same value in the unit of the Prometheus series
(seconds)::

    >>> LOOKUP_LATENCY.value, LOOKUP_LATENCY.prometheus_value
    (50.0, 0.05)

This module imports nothing of tiertrace.
"""

from __future__ import annotations

from dataclasses import dataclass

_PER_BASE_UNIT = {"1": 1.0, "ms": 1000.0}  # how many of ``unit`` make one base unit


@dataclass(frozen=True)
class Target:
    name: str
    """Name in ``stats()["targets"]`` and in the report."""
    setting: str
    """The ``init()`` keyword (and ``TIERTRACE_*`` variable) that overrides the value."""
    series: str
    """Suffix of the recording rule ``tiertrace:target:<series>``."""
    op: str
    """``>`` (at least) or ``<`` (at most)."""
    value: float
    unit: str
    """``1`` (a ratio) or ``ms``."""
    label: str
    """How people read the name."""

    @property
    def prometheus_value(self) -> float:
        """:attr:`value` in the base unit of Prometheus (ratios as they are, ms as seconds)."""
        return self.value / _PER_BASE_UNIT[self.unit]

    @property
    def record(self) -> str:
        """The recording rule holding the target as a constant series."""
        return f"tiertrace:target:{self.series}"

    def met(self, value: float) -> bool:
        """Whether ``value`` (in :attr:`unit`) meets the target."""
        return value > self.value if self.op == ">" else value < self.value


CACHE_EFFECTIVENESS = Target(
    name="cache_effectiveness",
    setting="target_cache_effectiveness",
    series="cache_effectiveness",
    op=">",
    value=0.70,
    unit="1",
    label="cache effectiveness",
)
LOOKUP_LATENCY = Target(
    name="mean_lookup_latency_ms",
    setting="target_lookup_latency_ms",
    series="lookup_latency_seconds_mean",
    op="<",
    value=50.0,
    unit="ms",
    label="mean lookup latency",
)
L1_HIT_RATE = Target(
    name="l1_hit_rate",
    setting="target_l1_hit_rate",
    series="l1_hit_ratio",
    op=">",
    value=0.40,
    unit="1",
    label="L1 hit rate",
)

TARGETS: tuple[Target, ...] = (CACHE_EFFECTIVENESS, LOOKUP_LATENCY, L1_HIT_RATE)
