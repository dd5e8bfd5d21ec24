"""A bare ``tiertrace.init()`` (exporter otlp) with and without a collector to talk to.

Each test runs a short script in its own process, the way a user runs one: ``tiertrace.init()``
with nothing but the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``, a few Redis commands against the
session's private redis-server, and the exit (``shutdown()`` from the exit hook).

* Nothing listening at the endpoint: ONE warning line on stderr names the endpoint and the
  settings to change, the undelivered batches are counted in ``stats()["self_errors"]``, and
  the process does not sit in the exporters' retry loops at exit (it did, for about 9 s, while
  printing ten ``Transient error …`` lines).
* A live collector — even one that takes its time to answer — gets everything: spans, metrics
  (the cost included) and the ``memory_tier_access`` log events, with nothing on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from support.otlp import OtlpReceiver
from support.services import free_port

SCRIPT = """
import json, sys, time
import redis, tiertrace

tiertrace.init()
r = redis.Redis.from_url(sys.argv[1])
with tiertrace.lookup(query_type="faq"):
    if r.get("faq:1") is None:
        r.set("faq:1", "answer")
r.get("faq:1")
r.delete("faq:1")
{flush}
print(json.dumps({{"work_done": time.time(), "stats": tiertrace.stats()}}), flush=True)
"""

# a collector that is up but slow: each request is answered after this long (more than the
# 1 s tiertrace gives the connection check at exit, less than the export timeout)
SLOW_S = 1.5
# exit after the work: was ~9 s with nothing listening; about 1 s is the goal, 3 s leaves room
# for a loaded two-CPU machine
EXIT_WITHIN_S = 3.0


def _run(redis_url: str, endpoint: str, flush: bool) -> tuple[dict[str, Any], str, float]:
    """Run the script; its last stdout line, its stderr, and seconds from work done to exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TIERTRACE_"))}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    code = SCRIPT.format(flush="tiertrace.flush()" if flush else "")
    done = subprocess.run(
        [sys.executable, "-c", code, redis_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    exited = time.time()
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report, done.stderr, exited - report["work_done"]


def test_no_collector_gives_one_warning_naming_the_endpoint_and_a_prompt_exit(
    redis_url: str,
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    report, stderr, exit_after_s = _run(redis_url, endpoint, flush=True)

    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    (warning,) = lines
    assert f"{endpoint}/v1/" in warning
    assert "connection refused" in warning
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in warning
    assert 'exporter="prometheus"|"console"|"none"' in warning
    assert "TIERTRACE_EXPORTER" in warning
    assert "Transient error" not in stderr
    # flush() sent one batch of spans, one of metrics and one of log events: none delivered
    assert report["stats"]["self_errors"] == {"export": 3}
    assert exit_after_s < EXIT_WITHIN_S


def test_no_collector_and_no_flush_still_exits_promptly_with_one_warning(redis_url: str) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    report, stderr, exit_after_s = _run(redis_url, endpoint, flush=False)

    assert len(stderr.splitlines()) == 1, stderr
    assert endpoint in stderr
    assert report["stats"]["self_errors"] == {}  # nothing was exported before the exit
    assert exit_after_s < EXIT_WITHIN_S


def test_a_live_collector_gets_spans_metrics_and_events_and_nothing_is_logged(
    redis_url: str,
) -> None:
    with OtlpReceiver() as receiver:
        report, stderr, _exit_after_s = _run(redis_url, receiver.url, flush=True)
    _assert_everything_delivered(receiver, report, stderr)


def test_a_slow_collector_still_gets_everything_at_exit(redis_url: str) -> None:
    with OtlpReceiver(delay_s=SLOW_S) as receiver:
        report, stderr, _exit_after_s = _run(redis_url, receiver.url, flush=False)
    _assert_everything_delivered(receiver, report, stderr)


def _assert_everything_delivered(
    receiver: OtlpReceiver, report: dict[str, Any], stderr: str
) -> None:
    assert stderr == ""
    assert report["stats"]["self_errors"] == {}
    spans = receiver.span_names()
    assert sorted(s for s in spans if s != "tiertrace.lookup") == [
        "DEL faq:{id}",
        "GET faq:{id}",
        "GET faq:{id}",
        "SET faq:{id}",
        "lookup faq",
    ]
    last = receiver.metric_names()[-1]  # the final export holds every instrument
    assert {"tiertrace.access.duration", "tiertrace.lookup.duration", "tiertrace.cost.usd"} <= last
    events = [r for r in receiver.log_records() if r.event_name == "memory_tier_access"]
    assert len(events) == 1  # the explicit lookup (implicit ones of one access log no event)
