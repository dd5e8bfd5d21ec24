"""The ``tiertrace`` command, run as a user runs it (a subprocess) against real Redis, PostgreSQL,
embedded Chroma, a real Prometheus and headless Chromium: demo, report (snapshot, Prometheus,
JSON, HTML, --check), assets, --help and --version, exit statuses."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from html import escape
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from support import ASSETS, ROOT, processes
from support.prometheus import start_prometheus
from support.services import free_port
from support.tools import need
from tiertrace import __version__
from tiertrace._cli.assets import ASSET_FILES

SESSION_REDIS = "<the session's Redis>"  # replaced by `cli_redis_url` in parametrized args
ARTIFACTS = ROOT / "artifacts"
WIDGETS = ("served-by-pie", "latency-bars", "cache-gauge", "tier-cards", "suggestions")
WIDGET_IDS = (*WIDGETS, "cost-projection")


def tiertrace(
    *args: str, timeout: float = 120, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OTEL_SDK_DISABLED": "false", **extra_env}
    return subprocess.run(
        [sys.executable, "-m", "tiertrace._cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tiertrace-cli-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def cli_redis_url(redis_url: str) -> str:
    """Database 7 of the session's private Redis: the demo's, apart from the other tests'."""
    return redis_url.rsplit("/", 1)[0] + "/7"


@pytest.fixture(scope="module")
def demo(pg_dsn: str, workdir: Path, cli_redis_url: str) -> dict[str, Any]:
    """One ``demo --lookups 500 --no-live --json --snapshot`` run shared by the tests below."""
    snapshot = workdir / "demo-snapshot.json"
    done = tiertrace(
        "demo",
        "--lookups",
        "500",
        "--no-live",
        "--json",
        "--snapshot",
        str(snapshot),
        "--redis-url",
        cli_redis_url,
        "--postgres-dsn",
        pg_dsn,
        TIERTRACE_MIN_PROJECTION_WINDOW_S="0",  # a few seconds: project anyway
    )
    assert done.returncode == 0, done.stderr
    return {"summary": json.loads(done.stdout), "stderr": done.stderr, "snapshot": snapshot}


def test_every_command_has_help_and_version_is_printed() -> None:
    for args in ([], ["demo"], ["report"], ["assets"]):
        done = tiertrace(*args, "--help")
        assert done.returncode == 0, (args, done.stderr)
        assert "usage: tiertrace" in done.stdout
    done = tiertrace("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"tiertrace {__version__}")
    assert tiertrace().returncode == 2  # no command: usage on stderr
    assert tiertrace("report").returncode == 2  # neither --snapshot nor --prometheus
    assert tiertrace("demo", "--agents", "0").returncode == 2


def test_demo_json_summary_adds_up(demo: dict[str, Any], pg_dsn: str, cli_redis_url: str) -> None:
    snap = demo["summary"]
    total = snap["total"]
    assert snap["demo"]["lookups"] == total["lookups"] == 500
    assert snap["demo"]["elapsed_s"] > 0
    served = total["served_by"]
    assert sum(served.values()) == 500
    tiers = total["tiers"]
    assert [tiers[n]["level"] for n in ("redis", "postgresql", "chroma")] == [1, 2, 3]
    assert total["cache_effectiveness"] == pytest.approx(served["redis"] / 500)
    # every lookup reads Redis first, then falls through tier by tier until one hits
    assert tiers["redis"]["reads"] == 500
    assert tiers["redis"]["hits"] == served["redis"]
    assert tiers["postgresql"]["reads"] == 500 - served["redis"]
    assert tiers["postgresql"]["hits"] == served["postgresql"]
    assert tiers["chroma"]["reads"] == tiers["postgresql"]["reads"] - served["postgresql"]
    assert tiers["chroma"]["hits"] == served["chroma"]
    assert served["none"] == tiers["chroma"]["reads"] - served["chroma"]
    for name, row in tiers.items():
        assert row["served"] == served[name] > 0, name  # all three tiers serve
        assert row["accesses"] >= row["reads"], name  # plus promotions (writes)
    assert tiers["redis"]["accesses"] > 500  # promotions into Redis
    # the progress lines went to stderr, only JSON to stdout; the stores are clean again
    assert "lookups" in demo["stderr"] and "tiertrace report" in demo["stderr"]
    assert json.loads(demo["snapshot"].read_text())["total"]["lookups"] == 500
    client = redis.Redis.from_url(cli_redis_url)
    assert list(client.scan_iter(match="tiertrace-demo:*")) == []
    client.close()
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT to_regclass('tiertrace_demo_memories')").fetchone() == (None,)


@pytest.mark.parametrize(
    ("args", "service", "hint"),
    [
        (["--redis-url", "redis://127.0.0.1:1/0"], "Redis", "redis-server --daemonize yes"),
        (
            [
                "--redis-url",
                SESSION_REDIS,
                "--postgres-dsn",
                "postgresql://postgres:s3cret@127.0.0.1:1/x",
            ],
            "PostgreSQL",
            "pg_ctlcluster",
        ),
        (
            ["--redis-url", SESSION_REDIS, "--postgres-dsn", "postgresql://[bad"],
            "PostgreSQL DSN",
            "",
        ),
        (
            [
                "--redis-url",
                SESSION_REDIS,
                "--postgres-dsn",
                "postgresql://no_such_role@127.0.0.1/x",
            ],
            "PostgreSQL at",
            "refused",
        ),
        (["--chroma-url", "http://127.0.0.1:1"], "Chroma", "chroma run"),
        (["--otlp", "http://127.0.0.1:1"], "OTLP collector", "docker compose up"),
    ],
)
def test_demo_names_the_unreachable_service_and_exits_2(
    args: list[str], service: str, hint: str, cli_redis_url: str
) -> None:
    args = [cli_redis_url if a == SESSION_REDIS else a for a in args]
    done = tiertrace("demo", "--no-live", *args, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert service in lines[0] and hint in lines[0]
    assert "s3cret" not in lines[0]


def test_report_from_snapshot_prints_table_targets_costs(demo: dict[str, Any]) -> None:
    done = tiertrace("report", "--snapshot", str(demo["snapshot"]))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    total = demo["summary"]["total"]
    for name, row in total["tiers"].items():
        line = next(x for x in out.splitlines() if x.startswith(name))
        assert f"{row['hit_rate'] * 100:.1f} %" in line
        assert f"{row['accesses']:,}" in line
    assert "cache effectiveness" in out and "cost projection" in out
    assert f"{total['cache_effectiveness'] * 100:.1f} %" in out
    assert f"${total['cost_per_day_usd']:,.2f}" in out
    assert f"${total['cost_per_month_usd']:,.2f}" in out


def test_report_json_round_trips_the_snapshot_numbers(demo: dict[str, Any]) -> None:
    done = tiertrace("report", "--snapshot", str(demo["snapshot"]), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    total = demo["summary"]["total"]
    assert report["lookups"] == total["lookups"]
    assert report["served_by"] == total["served_by"]
    assert report["cache_effectiveness"] == total["cache_effectiveness"]
    assert report["mean_lookup_latency_ms"] == total["mean_lookup_latency_ms"]
    for name, row in total["tiers"].items():
        got = report["tiers"][name]
        for field in ("level", "accesses", "reads", "hits", "hit_rate", "mean_ms", "p95_ms"):
            assert got[field] == row[field], (name, field)
        assert got["cost_per_day_usd"] == row["cost_per_day_usd"]
        assert got["cost_per_month_usd"] == pytest.approx(row["cost_per_day_usd"] * 30)
    assert report["cost"]["per_day_usd"] == pytest.approx(total["cost_per_day_usd"])
    assert report["cost"]["per_month_usd"] == pytest.approx(total["cost_per_month_usd"])
    assert [t["name"] for t in report["targets"]] == [
        "cache_effectiveness",
        "mean_lookup_latency_ms",
        "l1_hit_rate",
    ]
    assert len(report["suggestions"]) == len(demo["summary"]["suggestions"])


def _snapshot(l1_hits: int, lookups: int = 100) -> dict[str, Any]:
    """A small hand-made snapshot: ``l1_hits`` of ``lookups`` served by Redis, rest by PG."""

    def tier(level: int, reads: int, hits: int, cost: float) -> dict[str, Any]:
        return {
            "level": level,
            "accesses": reads,
            "reads": reads,
            "hits": hits,
            "hit_rate": hits / reads,
            "errors": 0,
            "mean_ms": 0.5 * level,
            "p50_ms": 0.4 * level,
            "p95_ms": 0.9 * level,
            "cost_usd": reads * cost,
            "cost_per_day_usd": reads * cost * 864,
            "served": hits,
        }

    deep = lookups - l1_hits
    view = {
        "lookups": lookups,
        "served_by": {"redis": l1_hits, "postgresql": deep, "chroma": 0, "none": 0},
        "cache_effectiveness": l1_hits / lookups,
        "mean_lookup_latency_ms": 1.25,
        "p95_lookup_latency_ms": 3.5,
        "cost_per_day_usd": 1.0,
        "cost_per_month_usd": 30.0,
        "elapsed_s": 100.0,
        "tiers": {
            "redis": tier(1, lookups, l1_hits, 0.0001),
            "postgresql": tier(2, max(deep, 1), deep, 0.001),
            "chroma": tier(3, 1, 0, 0.01),
        },
    }
    return {"generated_at": "2025-01-01T00:00:00Z", "window": view, "total": copy.deepcopy(view)}


def test_report_check_exits_1_only_when_a_target_is_missed(workdir: Path) -> None:
    missing, meeting = workdir / "misses.json", workdir / "meets.json"
    missing.write_text(json.dumps(_snapshot(l1_hits=30)))
    meeting.write_text(json.dumps(_snapshot(l1_hits=90)))
    done = tiertrace("report", "--snapshot", str(missing), "--check")
    assert done.returncode == 1
    assert "MISSED" in done.stdout and "cache_effectiveness" in done.stderr
    assert tiertrace("report", "--snapshot", str(missing)).returncode == 0  # no --check
    done = tiertrace("report", "--snapshot", str(meeting), "--check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_report_rejects_missing_or_malformed_snapshots(workdir: Path) -> None:
    not_json, not_snapshot = workdir / "bad.json", workdir / "other.json"
    not_json.write_text("{nope")
    not_snapshot.write_text(json.dumps({"total": {"lookups": 3}}))
    for path, why in (
        (workdir / "missing.json", "does not exist"),
        (not_json, "not valid JSON"),
        (not_snapshot, "not a tiertrace snapshot"),
    ):
        done = tiertrace("report", "--snapshot", str(path))
        assert done.returncode == 2
        assert done.stdout == ""
        assert len(done.stderr.strip().splitlines()) == 1 and why in done.stderr


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["--prometheus", "http://127.0.0.1:1"], "not reachable"),
        (["--prometheus", "ftp://example"], "bad Prometheus URL"),
        (["--prometheus", "http://127.0.0.1:1", "--range", "an hour"], "bad --range"),
    ],
)
def test_report_from_unreachable_or_bad_prometheus_exits_2(args: list[str], why: str) -> None:
    done = tiertrace("report", *args, timeout=30)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and why in done.stderr


def _html_checks(html: str, report: dict[str, Any]) -> None:
    for widget in WIDGET_IDS:
        assert f'id="{widget}"' in html
    tags = re.findall(r"<[^>]*>", html)
    style = "".join(re.findall(r"<style>(.*?)</style>", html, re.S))
    assert not [t for t in tags if re.search(r"https?://|//[a-z0-9.-]+\.[a-z]", t, re.I)]
    assert not re.search(r"url\(|@import|https?://", style)
    assert "<script" not in html and "<link" not in html and "<img" not in html
    assert f"{report['cache_effectiveness'] * 100:.1f} %" in html
    for name, row in report["tiers"].items():
        assert f">{name}<" in html
        assert f"{row['hit_rate'] * 100:.1f} %" in html
        assert f"{row['accesses']:,.0f}" in html
        assert f"${row['cost_per_day_usd']:,.2f}" in html
        assert f"${row['cost_per_month_usd']:,.2f}" in html
        assert f"{row['mean_ms']:.2f}" in html and f"{row['p95_ms']:.2f}" in html
    assert f"${report['cost']['per_month_usd']:,.2f}" in html


def test_html_report_is_self_contained_and_renders_in_chromium(
    demo: dict[str, Any], workdir: Path
) -> None:
    page = workdir / "report.html"
    done = tiertrace("report", "--snapshot", str(demo["snapshot"]), "--html", str(page), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    html = page.read_text(encoding="utf-8")
    _html_checks(html, report)
    for s in report["suggestions"][:15]:
        assert escape(s["message"]) in html

    chromium = need("chromium")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    common = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--enable-logging=stderr",
        "--v=0",
    ]
    with tempfile.TemporaryDirectory() as profile:
        render = subprocess.run(
            [
                *common,
                f"--user-data-dir={profile}",
                f"--screenshot={shot}",
                "--window-size=1280,1600",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [*common, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    for run in (render, dom):
        assert run.returncode == 0, run.stderr[-2000:]
        assert "Uncaught" not in run.stderr and "ERROR:CONSOLE" not in run.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    for widget in WIDGET_IDS:
        assert f'id="{widget}"' in dom.stdout
    assert dom.stdout.count("<path") >= 3 and "<svg" in dom.stdout


def test_assets_command_writes_the_stack(workdir: Path) -> None:
    out = workdir / "stack"
    done = tiertrace("assets", "--out", str(out))
    assert done.returncode == 0, done.stderr
    # one line per file of ASSET_FILES, in that order; then nothing but those files
    assert done.stdout.splitlines() == [str(out / relative) for relative in ASSET_FILES]
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted(ASSET_FILES)
    for relative in ASSET_FILES:  # byte for byte the files of this checkout
        assert (out / relative).read_bytes() == (ASSETS / relative).read_bytes(), relative
    assert f"next: cd {out} && " in done.stderr


def _wait_ready(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"Prometheus at {url} did not become ready")
        time.sleep(0.2)


def test_report_from_prometheus_scraping_the_demo(
    pg_dsn: str, workdir: Path, cli_redis_url: str
) -> None:
    metrics_port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: demo\n    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
    )
    prom, url = start_prometheus(workdir, config)
    try:
        _wait_ready(url)
        run = tiertrace(
            "demo",
            "--duration",
            "6",
            "--no-live",
            "--json",
            "--prometheus-port",
            str(metrics_port),
            "--redis-url",
            cli_redis_url,
            "--postgres-dsn",
            pg_dsn,
        )
        assert run.returncode == 0, run.stderr
        lookups = json.loads(run.stdout)["total"]["lookups"]
        page = workdir / "prometheus.html"
        done = tiertrace(
            "report", "--prometheus", url, "--range", "2m", "--json", "--html", str(page)
        )
    finally:
        processes.stop(prom)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["source"] == {"kind": "prometheus", "url": url, "range": "2m"}
    assert {n: r["level"] for n, r in report["tiers"].items()} == {
        "redis": 1,
        "postgresql": 2,
        "chroma": 3,
    }
    # increase() misses what happened before the first scrape; it never invents lookups
    assert 0 < report["lookups"] <= lookups * 1.1
    for name in ("redis", "postgresql", "chroma"):
        assert report["served_by"][name] > 0 and report["tiers"][name]["cost_per_day_usd"] > 0
    assert 0 < report["cache_effectiveness"] < 1
    assert report["mean_lookup_latency_ms"] > 0
    assert "tiertrace_lookup_duration_seconds_count" in report["promql"]["cache_effectiveness"]
    _html_checks(page.read_text(encoding="utf-8"), report)


@pytest.fixture
def private_tmp() -> Iterator[Path]:
    """A TMPDIR of one test's own (other test sessions may run on the same machine)."""
    path = Path(tempfile.mkdtemp(prefix="tiertrace-cli-tmp-"))
    path.chmod(0o755)  # as root, the demo's PostgreSQL runs as `postgres` below it
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_demo_can_start_private_services(private_tmp: Path) -> None:
    need("redis-server")
    need("postgresql")
    done = tiertrace(
        "demo",
        "--lookups",
        "200",
        "--no-live",
        "--json",
        "--start-services",
        "--redis-url",
        "redis://127.0.0.1:1/0",
        "--postgres-dsn",
        "postgresql://postgres@127.0.0.1:1/postgres",
        TMPDIR=str(private_tmp),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total"]["lookups"] == 200
    assert done.stderr.count("started a private server") == 2
    assert list(private_tmp.iterdir()) == []  # both servers stopped, their directory removed
