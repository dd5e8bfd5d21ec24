"""The metric names of the telemetry contract (DESIGN §4) are the names Prometheus sees.

Instruments with exactly the contract's names, kinds, units and buckets are exported through
the OpenTelemetry Prometheus exporter; the exposition must carry the Prometheus names the
dashboards and rules query. The collector's Prometheus translation (the path of the compose
stack) is re-stated as a small function and must give the same names.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from support.tools import need, requires

BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
ACCESS = {
    "tiertrace.tier": "redis",
    "tiertrace.tier.level": 1,
    "tiertrace.hit": "true",
    "db.system.name": "redis",
    "db.operation.name": "GET",
}
LOOKUP = {
    "tiertrace.served_by": "redis",
    "tiertrace.served_by.level": 1,
    "tiertrace.cache_hit": "true",
    "tiertrace.query_type": "profile",
}
TIER = {"tiertrace.tier": "postgresql", "tiertrace.tier.level": 2}
CANDIDATE = {"tiertrace.pattern": "SELECT profiles", "tiertrace.tier": "postgresql"}
COMPONENT = {"tiertrace.component": "redis"}

# OpenTelemetry name, kind, unit, attributes -> Prometheus name (DESIGN §4)
CONTRACT: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "tiertrace.access.duration": ("histogram", "s", ACCESS, "tiertrace_access_duration_seconds"),
    "tiertrace.lookup.duration": ("histogram", "s", LOOKUP, "tiertrace_lookup_duration_seconds"),
    "tiertrace.cost.usd": ("counter", "{USD}", TIER, "tiertrace_cost_usd_total"),
    "tiertrace.advisor.candidate.accesses": (
        "gauge", "{access}", CANDIDATE, "tiertrace_advisor_candidate_accesses"),
    "tiertrace.advisor.candidate.latency_savings": (
        "gauge", "s", CANDIDATE, "tiertrace_advisor_candidate_latency_savings_seconds"),
    "tiertrace.advisor.candidate.cost_savings.usd": (
        "gauge", "{USD}", CANDIDATE, "tiertrace_advisor_candidate_cost_savings_usd"),
    "tiertrace.self.errors": ("counter", "{error}", COMPONENT, "tiertrace_self_errors_total"),
}  # fmt: skip
SCOPE_LABELS = {"otel_scope_name", "otel_scope_version", "otel_scope_schema_url"}


def collector_name(name: str, kind: str, unit: str) -> str:
    """The collector's Prometheus name (exporter `prometheus`, suffixes on, no namespace)."""
    tokens = [t for t in re.split(r"[^A-Za-z0-9]+", name) if t]
    main, _, per = re.sub(r"\{[^}]*\}", "", unit).partition("/")
    words = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "%": "percent"}
    main_word = words.get(main, main) if main != "1" else ""
    if main_word and main_word not in tokens:
        tokens.append(main_word)
    if per:
        tokens += ["per", {"s": "second", "m": "minute", "h": "hour", "d": "day"}.get(per, per)]
    if kind == "gauge" and unit == "1":
        tokens.append("ratio")
    if kind == "counter" and tokens[-1] != "total":
        tokens.append("total")
    return "_".join(tokens)


def _point(provider: MeterProvider) -> None:
    meter = provider.get_meter("tiertrace")
    for name, (kind, unit, attributes, _) in CONTRACT.items():
        description = f"{name} (contract test)"
        if kind == "histogram":
            histogram = meter.create_histogram(
                name, unit=unit, description=description,
                explicit_bucket_boundaries_advisory=BUCKETS,
            )  # fmt: skip
            histogram.record(0.0003, attributes)
            if name == "tiertrace.access.duration":
                failed = {**ACCESS, "error.type": "TimeoutError"}
                del failed["tiertrace.hit"]
                histogram.record(0.2, failed)
        elif kind == "counter" and name == "tiertrace.cost.usd":

            def observe(_: CallbackOptions, attrs: dict[str, Any] = attributes) -> Iterator[Any]:
                yield Observation(0.25, attrs)

            meter.create_observable_counter(name, [observe], unit=unit, description=description)
        elif kind == "counter":
            meter.create_counter(name, unit=unit, description=description).add(1, attributes)
        else:
            meter.create_gauge(name, unit=unit, description=description).set(3.5, attributes)


@pytest.fixture(scope="module")
def exposition() -> str:
    """The tiertrace families of one scrape, as Prometheus text."""
    reader = PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        _point(provider)
        text = generate_latest(REGISTRY).decode()
    finally:
        provider.shutdown()
    keep = [
        line
        for line in text.splitlines()
        if re.match(r"(# (HELP|TYPE) )?tiertrace_", line)
    ]  # fmt: skip
    return "\n".join(keep) + "\n"


def samples(text: str) -> list[tuple[str, dict[str, str]]]:
    return [
        (s.name, s.labels) for f in text_string_to_metric_families(text) for s in f.samples
    ]  # fmt: skip


def expected_sample_names() -> set[str]:
    names = set()
    for kind, _, _, prometheus in CONTRACT.values():
        suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
        names |= {prometheus + s for s in suffixes}
    return names


def test_exported_names_are_the_contract_names(exposition: str) -> None:
    assert {name for name, _ in samples(exposition)} == expected_sample_names()
    assert "_ratio" not in exposition


def test_collector_translation_gives_the_contract_names() -> None:
    for name, (kind, unit, _, prometheus) in CONTRACT.items():
        assert collector_name(name, kind, unit) == prometheus, name
    # the rules the function encodes, on names outside the contract
    assert collector_name("a.b", "gauge", "1") == "a_b_ratio"
    assert collector_name("a.size", "histogram", "By") == "a_size_bytes"
    assert collector_name("a.latency.seconds", "histogram", "s") == "a_latency_seconds"


def test_histogram_buckets_are_the_advisory(exposition: str) -> None:
    for prefix in ("tiertrace_access_duration_seconds", "tiertrace_lookup_duration_seconds"):
        bounds = {
            labels["le"] for name, labels in samples(exposition) if name == f"{prefix}_bucket"
        }  # fmt: skip
        assert sorted(float(b) for b in bounds - {"+Inf"}) == list(BUCKETS), prefix
        assert "+Inf" in bounds


def test_attributes_become_the_contract_labels(exposition: str) -> None:
    labels: dict[str, set[str]] = {}
    for name, sample_labels in samples(exposition):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        labels.setdefault(base, set()).update(set(sample_labels) - SCOPE_LABELS - {"le"})
    access = {"tiertrace_tier", "tiertrace_tier_level", "tiertrace_hit", "db_system_name",
              "db_operation_name", "error_type"}  # fmt: skip
    assert labels["tiertrace_access_duration_seconds"] == access
    assert labels["tiertrace_lookup_duration_seconds"] == {
        "tiertrace_served_by", "tiertrace_served_by_level", "tiertrace_cache_hit",
        "tiertrace_query_type"}  # fmt: skip
    assert labels["tiertrace_cost_usd_total"] == {"tiertrace_tier", "tiertrace_tier_level"}
    for gauge in ("accesses", "latency_savings_seconds", "cost_savings_usd"):
        assert labels[f"tiertrace_advisor_candidate_{gauge}"] == {
            "tiertrace_pattern", "tiertrace_tier"}  # fmt: skip
    assert labels["tiertrace_self_errors_total"] == {"tiertrace_component"}
    reads = [lb for n, lb in samples(exposition) if n.startswith("tiertrace_access")]
    # a write has no hit attribute; an empty label is the same as no label in Prometheus
    assert {lb.get("tiertrace_hit") or None for lb in reads} == {"true", None}
    assert {lb["tiertrace_tier_level"] for lb in reads} == {"1"}


@requires("promtool")
def test_exposition_passes_promtool_check_metrics(exposition: str) -> None:
    result = subprocess.run(
        [need("promtool"), "check", "metrics"], input=exposition, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stdout.strip() and not result.stderr.strip()
