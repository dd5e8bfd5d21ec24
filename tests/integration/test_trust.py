"""Figures a user can trust: cost projections only after enough observation and per tier, the
prices named, every suggestion reachable, advisor messages over the real elapsed time and the
demo strict about its settings. (No per-access objects kept: ``test_memory_flat.py``.)"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest
import redis

import tiertrace
from support import ROOT
from support.services import free_port
from support.stats import StatsRig
from tiertrace._advisor.advisor import Advisor
from tiertrace._cli.html import render_html
from tiertrace._cli.report import from_snapshot, render_text
from tiertrace._core.metrics import Metrics
from tiertrace._core.tiers import DEFAULT_TIERS, Tier
from tiertrace._runtime.config import Settings
from tiertrace._runtime.stats import Stats

README = ROOT / "README.md"
REDIS, POSTGRES, CHROMA = DEFAULT_TIERS


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIERTRACE_", "OTEL_"))}
    return {**env, "PYTHONWARNINGS": "ignore", **extra}


# --- cost projections -----------------------------------------------------------------------


def test_readme_quickstart_stats_say_collecting_instead_of_a_cost(
    redis_url: str, pg_dsn: str
) -> None:
    code = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    code = code.replace("redis.Redis()", f"redis.Redis.from_url({redis_url!r})")
    code = code.replace('"postgresql://postgres@127.0.0.1/postgres"', repr(pg_dsn))
    code += "\nimport json\nprint(json.dumps(tiertrace.stats()))\n"
    redis.Redis.from_url(redis_url).delete("user:42:profile")
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=_clean_env(TIERTRACE_PROMETHEUS_PORT=str(free_port())),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    snap = json.loads(done.stdout.strip().splitlines()[-1])
    total = snap["total"]
    assert total["served_by"]["redis"] == 1 and total["served_by"]["postgresql"] == 1
    assert total["cost_per_day_usd"] is None
    assert total["cost_per_month_usd"] is None
    assert total["projection"] == "collecting"
    assert total["min_projection_window_s"] == 60.0
    for name in ("redis", "postgresql"):
        row = total["tiers"][name]
        assert row["cost_per_day_usd"] is None, name
        assert row["projection"] == "collecting", name
        assert 0 < row["projection_needs_s"] <= 60.0
        assert row["cost_usd"] > 0  # what was spent is still reported
    assert total["tiers"]["chroma"]["projection"] == "no traffic"
    assert snap["window"]["cost_per_day_usd"] is None


def test_each_tier_projects_over_its_own_observed_time_in_both_views() -> None:
    rig = StatsRig(stats_window_s=10)
    snaps = {}
    for step in range(901):  # tenths of a second, t = 0 ... 90 s
        rig.at(step / 10)
        if step % 10 == 0:  # stats() polled every second, before that instant's accesses
            snaps[step // 10] = rig.snapshot()
        if step in (0, 10, 20):  # chroma: 3 accesses from t = 0 (few, early)
            rig.access(CHROMA, op="query")
        if 300 <= step < 900:  # redis: 10 per second from t = 30 to t = 89.9
            rig.access(REDIS)

    snap = snaps[70]  # redis observed 40 s: not yet
    redis_row = snap["total"]["tiers"]["redis"]
    assert redis_row["accesses"] == 400
    assert redis_row["cost_per_day_usd"] is None
    assert redis_row["projection"] == "collecting"
    assert redis_row["projection_needs_s"] == pytest.approx(20.0)
    assert snap["window"]["tiers"]["redis"]["projection_needs_s"] == pytest.approx(20.0)
    chroma_row = snap["total"]["tiers"]["chroma"]
    assert chroma_row["projection"] == "ready"
    assert chroma_row["cost_per_day_usd"] == pytest.approx(0.03 / 70 * 86400)
    assert snap["total"]["cost_per_day_usd"] is None  # a tier with traffic still collects
    assert snap["total"]["projection_needs_s"] == pytest.approx(20.0)

    total, window = snaps[90]["total"], snaps[90]["window"]
    # total: redis from its first access (t=30), chroma from its own (t=0)
    assert total["tiers"]["redis"]["observed_s"] == pytest.approx(60.0)
    assert total["tiers"]["redis"]["cost_per_day_usd"] == pytest.approx(0.06 / 60 * 86400)
    assert total["tiers"]["chroma"]["cost_per_day_usd"] == pytest.approx(0.03 / 90 * 86400)
    assert total["tiers"]["postgresql"]["projection"] == "no traffic"
    assert total["projection"] == "ready"
    assert total["cost_per_day_usd"] == pytest.approx(86.4 + 28.8)
    assert total["cost_per_month_usd"] == pytest.approx((86.4 + 28.8) * 30)
    # window: the last 10 s (from the poll of t=80): redis's 100 accesses of t=80.0 ... 89.9
    # at its own rate, not diluted by chroma's old accesses; chroma has none in it
    assert window["elapsed_s"] == pytest.approx(10.0)
    assert window["tiers"]["redis"]["accesses"] == 100
    assert window["tiers"]["redis"]["observed_s"] == pytest.approx(10.0)
    assert window["tiers"]["redis"]["cost_per_day_usd"] == pytest.approx(0.01 / 10 * 86400)
    assert window["tiers"]["redis"]["cost_per_day_usd"] == pytest.approx(
        total["tiers"]["redis"]["cost_per_day_usd"]
    )
    assert window["tiers"]["chroma"]["projection"] == "no traffic"
    assert window["tiers"]["chroma"]["cost_per_day_usd"] == 0.0
    assert window["cost_per_day_usd"] == pytest.approx(86.4)


def test_min_projection_window_is_a_setting_with_an_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().min_projection_window_s == 60.0
    monkeypatch.setenv("TIERTRACE_MIN_PROJECTION_WINDOW_S", "5")
    try:
        assert tiertrace.init(exporter="none").settings.min_projection_window_s == 5.0
    finally:
        tiertrace.shutdown()
    monkeypatch.setenv("TIERTRACE_MIN_PROJECTION_WINDOW_S", "-1")
    with pytest.raises(tiertrace.ConfigError, match="TIERTRACE_MIN_PROJECTION_WINDOW_S"):
        tiertrace.init(exporter="none")
    rig = StatsRig(min_projection_window_s=0)
    rig.at(0.0).access(REDIS)
    assert rig.at(1.0).snapshot()["total"]["tiers"]["redis"]["cost_per_day_usd"] == pytest.approx(
        0.0001 * 86400
    )


# --- prices ---------------------------------------------------------------------------------


def test_snapshot_names_the_default_placeholder_prices() -> None:
    stats = Stats(Settings(), Metrics())
    assert stats.snapshot()["prices"] == {
        "redis": {"per_access": 0.0001, "per_operation": {}, "source": "defaults"},
        "postgresql": {"per_access": 0.001, "per_operation": {}, "source": "defaults"},
        "chroma": {"per_access": 0.01, "per_operation": {}, "source": "defaults"},
        "source": "defaults",
    }


def test_prices_from_init_and_environment_are_named_and_charged(
    r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        tiertrace.init(exporter="none", prices={"redis": 0.0002, "redis:GET": 0.00015})
        r.get("k")
        r.set("k", "v")
        snap = tiertrace.stats()
        assert snap["prices"]["redis"] == {
            "per_access": 0.0002,
            "per_operation": {"GET": 0.00015},
            "source": "init",
        }
        assert snap["prices"]["chroma"]["source"] == "defaults"
        assert snap["prices"]["source"] == "init"
        assert snap["total"]["tiers"]["redis"]["cost_usd"] == pytest.approx(0.00035)
    finally:
        tiertrace.shutdown()

    monkeypatch.setenv("TIERTRACE_PRICES", "redis=0.0003, postgresql=0.002,chroma=0.02")
    try:
        snap = tiertrace.init(exporter="none").stats.snapshot()
        assert {n: p["per_access"] for n, p in snap["prices"].items() if n != "source"} == {
            "redis": 0.0003,
            "postgresql": 0.002,
            "chroma": 0.02,
        }
        assert snap["prices"]["source"] == "environment"
    finally:
        tiertrace.shutdown()

    tiers = [Tier("redis", 1, "redis", cost_per_access=0.0005, cost_per_operation={"GET": 0.0004})]
    monkeypatch.delenv("TIERTRACE_PRICES")
    try:
        prices = tiertrace.init(exporter="none", tiers=tiers).stats.snapshot()["prices"]
        assert prices == {
            "redis": {"per_access": 0.0005, "per_operation": {"GET": 0.0004}, "source": "init"},
            "source": "init",
        }
    finally:
        tiertrace.shutdown()


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("redis=0.0002,mongo=1", ["TIERTRACE_PRICES", "mongo=1", "names no tier"]),
        ("redis=cheap", ["TIERTRACE_PRICES", "'redis=cheap'", "redis=0.0002"]),
        ("redis=-1", ["TIERTRACE_PRICES", "redis=-1", ">= 0"]),
    ],
)
def test_bad_prices_entry_is_a_config_error_naming_it(
    value: str, words: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERTRACE_PRICES", value)
    with pytest.raises(tiertrace.ConfigError) as caught:
        tiertrace.init(exporter="none")
    for word in words:
        assert word in str(caught.value)


def test_report_names_the_prices_and_how_to_set_real_ones() -> None:
    rig = StatsRig()
    rig.at(0.0).access(REDIS)
    text = render_text(from_snapshot(rig.at(2.0).snapshot()))
    assert "collecting (2 s of 60 s)" in text
    table = text.split("cost projection")[1].split("prices used")[0].splitlines()
    assert [line.split() for line in table if line.startswith(("  redis", "  total"))] == [
        ["redis", "collecting", "(2", "s", "of", "60", "s)"],
        ["total", "collecting", "(2", "s", "of", "60", "s)"],
    ]
    no_traffic = [line.split() for line in table if line.startswith("  postgresql")]
    assert no_traffic == [["postgresql", "$0.00", "$0.00"]]  # no traffic, nothing to project
    assert "tiertrace's placeholder defaults, not your prices" in text
    assert "TIERTRACE_PRICES=" in text and "cost_per_operation={'GET'" in text
    html = render_html(from_snapshot(rig.snapshot()))
    assert "collecting (2 s of 60 s)" in html and "TIERTRACE_PRICES=" in html


# --- report completeness and advisor messages -----------------------------------------------


def _snapshot_with_suggestions(count: int) -> dict[str, Any]:
    snap = Stats(Settings(), Metrics()).snapshot()
    snap["suggestions"] = [
        {"kind": "top-cost", "pattern": f"p{i}", "tier": "postgresql", "message": f"finding #{i}"}
        for i in range(count)
    ]
    return copy.deepcopy(snap)


def test_html_report_lists_every_suggestion() -> None:
    report = from_snapshot(_snapshot_with_suggestions(40))
    html = render_html(report)
    section = html.split('id="suggestions"')[1].split("</section>")[0]
    assert "Suggestions (40)" in section
    assert [int(n) for n in re.findall(r"finding #(\d+)<", section)] == list(range(40))
    text = render_text(report)
    assert "… and 35 more (--json or --html lists them)" in text


def test_advisor_messages_give_the_observed_time_not_the_configured_window() -> None:
    now = [0.0]
    adv = Advisor(clock=lambda: now[0], min_accesses=2)
    for i in range(20):  # a 2 s run: a hot key read from PostgreSQL, another served by Redis
        now[0] = i * 0.1
        adv.observe_access("redis", 1, "fact:{id}", "fact:1", 0.0003, 0.0001, False, False)
        adv.observe_access("postgresql", 2, "fact:{id}", None, 0.004, 0.001, True, False)
        adv.observe_lookup("fact:{id}", "fact:1", "postgresql", 2, 0.0043, 0.0011)
        adv.observe_access("redis", 1, "pref:{id}", "pref:1", 0.0003, 0.0001, True, False)
        adv.observe_lookup("pref:{id}", "pref:1", "redis", 1, 0.009, 0.0001)
    now[0] = 2.0
    found = adv.suggestions()
    assert found, "the advisor has findings"
    for s in found:
        assert " 1 h" not in s.message, s.message
    [pre] = [s for s in found if s.kind == "pre-cache"]
    assert "read 20 times in 2.0 s from postgresql" in pre.message
    tops = [s for s in found if s.kind.startswith("top-")]
    assert {s.pattern for s in tops} == {"fact:{id}"}  # pref:{id} is served by redis already
    assert all("in 2.0 s" in s.message and "mostly from postgresql" in s.message for s in tops)


# --- the demo command -----------------------------------------------------------------------


def _tiertrace(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tiertrace._cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=_clean_env(**env),
        check=False,
    )


def test_demo_with_a_bad_tiertrace_variable_fails_like_init(redis_url: str, pg_dsn: str) -> None:
    args = ("demo", "--lookups", "5", "--no-live", "--redis-url", redis_url)
    done = _tiertrace(*args, "--postgres-dsn", pg_dsn, TIERTRACE_EXPORTER="bogus")
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "tiertrace demo: environment TIERTRACE_EXPORTER: exporter='bogus' is invalid; "
        "use one of 'otlp', 'prometheus', 'console', 'none'"
    ]


def test_demo_help_shows_the_store_defaults() -> None:
    done = _tiertrace("demo", "--help", COLUMNS="200")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "--redis-url URL Redis for L1" in text
    assert "(default redis://127.0.0.1:6379/0)" in text
    assert "--postgres-dsn DSN PostgreSQL for L2" in text
    assert "(default postgresql://postgres@127.0.0.1:5432/postgres)" in text


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0.0068, "7 ms"),
        (0.0001, "1 ms"),
        (2.04, "2.0 s"),
        (98, "98 s"),
        (900, "15 min"),
        (3600, "1 h"),
        (5400, "1.5 h"),
    ],
)
def test_observed_spans_read_as_people_say_them(seconds: float, said: str) -> None:
    from tiertrace._advisor.findings import fmt_span

    assert fmt_span(seconds) == said
