"""``tiertrace demo``: watch a three-tier agent memory warm up, on real Redis, PostgreSQL, Chroma.

::

    tiertrace demo                       # 3,000 lookups by 4 agents, live view, final report
    tiertrace demo --duration 0 --prometheus-port 9464   # until Ctrl-C, scrape :9464/metrics
    tiertrace demo --otlp http://127.0.0.1:4318          # send traces/metrics/logs to a collector
    tiertrace demo --lookups 500 --no-live --json        # machine-readable summary on stdout
    tiertrace demo --workers 4 --prometheus-port 9464    # 4 processes on :9464-:9467, combined

What it does: it generates a memory corpus of ``--facts`` facts (default 2,000, at most 5,000:
"What do I remember about the amber falcon in travel?") and seeds the stores the way an
agent's memory looks after a while — every fact in Chroma
(L3, long-term semantic memory), about 70 % of them also in PostgreSQL (L2, consolidated
memory), Redis (L1) empty. Then several agents (threads, ``--agents``, default 4) ask questions
whose popularity follows a Zipf law (a few facts are asked all the time, most rarely), at
``--rate`` lookups per second in total (default 150; 0 = as fast as the stores answer), through
`tiertrace.TieredMemory`: Redis ``GET``, then the PostgreSQL ``SELECT``, then a Chroma
``query`` with `tiertrace.HashingEmbeddingFunction` (offline, no model download). A hit in a
deeper tier is promoted upwards; Redis entries live ``--ttl`` seconds (default 3), so popular
facts stay cached and rare ones keep falling through. Every second the demo also acts on the
advisor's pre-cache suggestions the way an application would: it keeps each suggested key in
Redis with the suggested TTL (``--no-precache`` turns that off; the demo runs the advisor with
``advisor_min_accesses=2`` instead of 10 so that a 20-second run has suggestions). You see all
three tiers serve, and cache effectiveness (lookups served by L1) climb from under 50 % in the
first second past its 70 % target over the last 5 seconds of a default run (the total over
the whole run, cold start included, stays below it — the final report says so). The demo's
``stats()`` window is 5 s (``stats_window_s=5``) unless ``TIERTRACE_STATS_WINDOW_S`` sets
another.

Stores (checked first, and the ``--otlp`` endpoint too; see `tiertrace._cli.services` for
what happens when one is down):

* ``--redis-url`` (default ``redis://127.0.0.1:6379/0``): only keys under ``tiertrace-demo:``
  are written, and deleted at start and at the end; nothing else in the database is touched.
* ``--postgres-dsn`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``): the demo
  creates its own table ``tiertrace_demo_memories`` and drops it at the end.
* ``--chroma-url`` (default: none, an embedded ``PersistentClient`` in a temporary directory,
  removed at the end); with a server URL the demo uses, and deletes at the end, its own
  collection ``tiertrace_demo_memories``.

Stopping: after ``--lookups`` (default 3,000; 0 = no limit) or ``--duration`` seconds
(0 = no limit), whichever comes first, or at Ctrl-C. Give only ``--duration`` to run for that
long. When standard output is not a terminal the run is capped at 90 s unless ``--duration``
says otherwise, so ``make demo`` in CI always ends.

Output: on a terminal a live view refreshed every second (``--no-live`` or a non-terminal
gives one progress line per second instead), then the final report of `tiertrace report`.
``--json`` prints only the final `tiertrace.stats()` snapshot plus ``{"demo": {"lookups",
"elapsed_s", ...}}`` on standard output (progress and report go to standard error);
``--snapshot FILE`` writes the same JSON to a file for ``tiertrace report --snapshot FILE``.
Telemetry goes nowhere by default; ``--prometheus-port`` serves ``/metrics`` on 127.0.0.1 and
``--otlp URL`` exports over OTLP (it sets ``OTEL_EXPORTER_OTLP_ENDPOINT``); without either,
``TIERTRACE_EXPORTER`` is honoured. The demo always records spans: with ``--prometheus-port``
(or no exporter) it gives ``init()`` a tracer provider of its own, which exports the spans over
OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (``--prometheus-port P --otlp URL``: metrics
scraped, traces to the collector) and only records them otherwise, so that ``/metrics`` serves
exemplars (trace and span ids of sampled accesses) to a Prometheus asking for OpenMetrics.
Every other ``TIERTRACE_*`` variable applies as it does to ``init()`` (``TIERTRACE_PRICES`` to
use your prices, ``TIERTRACE_MIN_PROJECTION_WINDOW_S``); a malformed one stops the demo at once
with exit status 2 and the message ``init()`` would raise.
Cost projections read "collecting (N s of 60 s)" until a tier has been observed for a minute.
``--seed`` makes the corpus and the question stream repeatable.

``--workers N`` runs the demo as N processes, each with its own /metrics port, and shows their
combined figures: see `tiertrace._cli.workers`.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import tiertrace
from tiertrace._cli import report as _report
from tiertrace._cli import view as _demo_view
from tiertrace._cli.services import Unavailable
from tiertrace._cli.stores import Fact, Stores, corpus, popularity


@dataclass
class Options:
    """The settings of one demo run (the command line's options)."""

    lookups: int = 3000
    duration: float = 0.0
    agents: int = 4
    rate: float = 150.0
    ttl_s: int = 3
    facts: int = 2000
    zipf: float = 1.1
    precache: bool = True
    live: bool = True
    json: bool = False
    snapshot: str | None = None
    prometheus_port: int | None = None
    otlp: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    postgres_dsn: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    chroma_url: str | None = None
    start_services: bool = False
    seed: int = 7
    workers: int = 1  # worker processes (see `tiertrace._cli.workers`)
    namespace: str = ""  # a worker's own keys, table and collection
    worker_stats: str | None = None  # a worker writes its stats() here every second


class Progress:
    """Counters shared by the agents and the view."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.issued = self.done = self.errors = 0
        self.first_error: str | None = None
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def take(self) -> bool:
        with self.lock:
            if self.stop.is_set() or (self.limit and self.issued >= self.limit):
                return False
            self.issued += 1
            return True

    def finish(self, error: BaseException | None) -> None:
        with self.lock:
            if error is None:
                self.done += 1
                return
            self.errors += 1
            if self.first_error is None:
                self.first_error = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
            if self.errors >= 20:  # a store went away: stop rather than spin
                self.stop.set()


def agent(
    number: int, memory: Any, ranked: list[Fact], cum: list[float], opts: Options, p: Progress
) -> None:
    """One simulated agent: ask Zipf-distributed questions until told to stop."""
    rng = random.Random(opts.seed * 1000 + number)
    interval = opts.agents / opts.rate if opts.rate > 0 else 0.0
    due = time.monotonic() + rng.random() * interval
    agent_id, user_id = f"agent-{number}", f"user-{number % 2 + 1}"
    while p.take():
        if interval:
            pause = due - time.monotonic()
            if pause > 0 and p.stop.wait(pause):
                with p.lock:  # stopped while waiting: give the ticket back
                    p.issued -= 1
                return
            due = max(due + interval, time.monotonic() - interval)
        fact = rng.choices(ranked, cum_weights=cum)[0]
        try:
            memory.track_memory_access(
                fact.question, user_id=user_id, agent_id=agent_id, query_type=fact.query_type
            )
        except Exception as error:
            p.finish(error)
        else:
            p.finish(None)


def _init_kwargs(opts: Options) -> dict[str, Any]:
    """The ``init()`` arguments of the run: the command line's, else ``TIERTRACE_*``."""
    kwargs: dict[str, Any] = {}
    if opts.prometheus_port is not None:
        kwargs["exporter"], kwargs["prometheus_port"] = "prometheus", opts.prometheus_port
    elif opts.otlp:
        kwargs["exporter"] = "otlp"
    elif "TIERTRACE_EXPORTER" not in os.environ:
        kwargs["exporter"] = "none"  # telemetry goes nowhere unless asked
    if "TIERTRACE_ADVISOR_MIN_ACCESSES" not in os.environ:
        kwargs["advisor_min_accesses"] = 2  # not 10: a 20-second run has candidates too
    if "TIERTRACE_STATS_WINDOW_S" not in os.environ:
        kwargs["stats_window_s"] = 5.0  # not 60: the window of a 20-second run is its end
    return kwargs


def check_settings(opts: Options) -> None:
    """Raise `Unavailable` with `ConfigError`'s message when a ``TIERTRACE_*`` is malformed.

    Done before any store is touched, so ``TIERTRACE_EXPORTER=bogus tiertrace demo`` fails at
    once (exit status 2, one line), as ``init()`` would.
    """
    from tiertrace._runtime.config import resolve

    try:
        resolve(_init_kwargs(opts))
    except tiertrace.ConfigError as why:
        raise Unavailable(str(why)) from None


OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def _init_telemetry(opts: Options) -> Any:
    """``init()`` for the run; returns the demo's own tracer provider (to shut down), or None."""
    if opts.otlp:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = opts.otlp
    os.environ.setdefault("OTEL_SERVICE_NAME", "tiertrace-demo")
    kwargs = _init_kwargs(opts)
    provider = _tracer_provider(kwargs)
    if provider is not None:
        kwargs["tracer_provider"] = provider
    try:
        tiertrace.init(**kwargs)
    except BaseException:
        if provider is not None:
            provider.shutdown()
        raise
    return provider


def _tracer_provider(kwargs: dict[str, Any]) -> Any:
    """The demo's SDK tracer provider when tiertrace would record no spans, else None.

    With ``exporter="prometheus"`` or ``"none"`` tiertrace makes no tracer provider of its own,
    so the demo would have no spans, and ``/metrics`` no exemplars to link a latency to its
    trace. The demo therefore always records spans (sampled, ``OTEL_TRACES_SAMPLER`` applies):
    they are exported over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``…_TRACES_ENDPOINT``,
    or ``--otlp``) is set, and only recorded otherwise. ``otlp`` and ``console`` export spans
    through tiertrace's own provider: None.
    """
    from tiertrace._runtime.config import resolve

    if resolve(kwargs).exporter not in ("prometheus", "none"):
        return None
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(shutdown_on_exit=False)
    if any(os.environ.get(name) for name in OTLP_ENDPOINTS):
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise tiertrace.ConfigError(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set: exporting the demo's spans needs "
                "opentelemetry-exporter-otlp; pip install 'tiertrace[otlp]'"
            ) from None
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def run(opts: Options) -> int:
    """Run the demo (see the module documentation); returns the exit status."""
    if opts.workers > 1:
        from tiertrace._cli.workers import run_workers

        return run_workers(opts)
    out: TextIO = sys.stderr if opts.json else sys.stdout
    try:
        check_settings(opts)
        stores = Stores(
            opts.redis_url,
            opts.postgres_dsn,
            opts.chroma_url,
            opts.start_services,
            opts.otlp,
            opts.namespace,
        )
        with stores as st:
            return _run(opts, st, out)
    except Unavailable as why:
        print(f"tiertrace demo: {why}", file=sys.stderr)
        return 2


def _run(opts: Options, stores: Stores, out: TextIO) -> int:
    rng = random.Random(opts.seed)
    facts = corpus(opts.facts, rng)
    ranked, cum = popularity(facts, opts.zipf, rng)
    memory = stores.seed(facts, opts.ttl_s, opts.agents)  # before init(): not measured
    try:
        spans = _init_telemetry(opts)
    except tiertrace.ConfigError as why:  # a busy --prometheus-port, say
        raise Unavailable(str(why)) from None
    try:
        for url in stores.started:
            print(f"tiertrace demo: started a private server at {url}", file=out)
        print(
            f"tiertrace demo: {len(facts):,} facts ({sum(f.in_postgres for f in facts):,} in "
            f"PostgreSQL, all in Chroma, Redis empty), {opts.agents} agents, "
            + (f"{opts.lookups:,} lookups" if opts.lookups else "no lookup limit")
            + (f", at most {opts.duration:g} s" if opts.duration else ""),
            file=out,
            flush=True,
        )
        for line in _report.price_lines({"prices": tiertrace.stats().get("prices")}):
            print(f"tiertrace demo: {line}", file=out, flush=True)
        progress = Progress(opts.lookups)
        view = _demo_view.make_view(opts.live, out, opts.lookups, opts.duration)
        elapsed = _drive(stores, memory, ranked, cum, opts, progress, view)
        tiertrace.flush()
        snap = tiertrace.stats()
    finally:
        tiertrace.shutdown()
        if spans is not None:
            spans.shutdown()  # the last spans out, over OTLP when an endpoint is set
    snap["demo"] = {
        "lookups": progress.done,
        "elapsed_s": round(elapsed, 3),
        "agents": opts.agents,
        "facts": opts.facts,
        "seed": opts.seed,
        "errors": progress.errors,
    }
    finish(opts, snap, out, view.history, view.pinned)
    if progress.first_error is not None:
        print(
            f"tiertrace demo: {progress.errors} lookups failed, first: {progress.first_error}",
            file=sys.stderr,
        )
        return 2 if progress.done == 0 or progress.stop.is_set() else 0
    return 0


def finish(opts: Options, snap: dict[str, Any], out: TextIO, history: list[float],
           pinned: int) -> None:  # fmt: skip
    """The end of a run: the snapshot file, the summary lines, the report, the JSON."""
    if opts.snapshot:
        Path(opts.snapshot).write_text(json.dumps(snap, indent=2) + "\n", encoding="utf-8")
    w, done, elapsed = snap["window"], snap["demo"]["lookups"], snap["demo"]["elapsed_s"] or 1e-9
    first = f"{history[0] * 100:.1f} % after 1 s, " if len(history) > 1 else ""
    print(
        f"\n{done:,} lookups in {elapsed:.1f} s ({done / elapsed:,.0f}/s)\n"
        f"cache effectiveness {first}{w['cache_effectiveness'] * 100:.1f} % over the last "
        f"{w['lookups']:,} lookups ({w['elapsed_s']:.0f} s)"
        + (f"; {pinned} keys pre-cached on the advisor's suggestion" if pinned else "")
        + "\n",
        file=out,
    )
    out.write(_report.render_text(_report.from_snapshot(snap, source="tiertrace demo")))
    out.flush()
    if opts.json:
        sys.stdout.write(json.dumps(snap, indent=2) + "\n")
        sys.stdout.flush()


def _drive(
    stores: Stores,
    memory: Any,
    ranked: list[Fact],
    cum: list[float],
    opts: Options,
    p: Progress,
    view: Any,
) -> float:
    import tiertrace

    threads = [
        threading.Thread(
            target=agent, args=(n + 1, memory, ranked, cum, opts, p), name=f"agent-{n + 1}"
        )
        for n in range(opts.agents)
    ]
    started = time.monotonic()
    for t in threads:
        t.daemon = True
        t.start()
    tick = started + 1.0
    try:
        with view:
            while any(t.is_alive() for t in threads):
                now = time.monotonic()
                if opts.duration and now - started >= opts.duration:
                    p.stop.set()
                threads[0].join(timeout=max(0.0, min(tick - now, 0.1)))
                if time.monotonic() >= tick:
                    tick += 1.0
                    if opts.precache:
                        view.pinned = stores.precache(tiertrace.suggestions())
                    _update(view, opts, p.done, time.monotonic() - started)
            _update(view, opts, p.done, time.monotonic() - started)
    except KeyboardInterrupt:
        p.stop.set()
        for t in threads:
            t.join(timeout=10)
    return max(time.monotonic() - started, 1e-9)


def _update(view: Any, opts: Options, done: int, elapsed: float) -> None:
    """Refresh the view; a worker process also writes its snapshot for the parent to add up."""
    import tiertrace

    snap = tiertrace.stats()
    view.update(snap, done, elapsed)
    if opts.worker_stats and snap:
        path = Path(opts.worker_stats)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({**snap, "demo": {"lookups": done}}), encoding="utf-8")
        os.replace(tmp, path)
