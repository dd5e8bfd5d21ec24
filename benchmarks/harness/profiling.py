"""Profile mode: one operation in one configuration in a loop, and the py-spy summary.

``profile_loop`` runs one operation for ``seconds`` (collector off as in the timed batches unless
``collect``) and prints wall and CPU µs per call; run it under a sampling profiler::

    py-spy record --threads --full-filenames -r 1000 --format raw -o /tmp/full.txt -- \\
        .venv/bin/python benchmarks/overhead.py --profile full --op redis_get_hit
    .venv/bin/python benchmarks/overhead.py --profile-report /tmp/full.txt --overhead-us 85

or under cProfile for deterministic call counts (divide by the calls it prints)::

    .venv/bin/python -m cProfile -s ncalls benchmarks/overhead.py --profile full --seconds 5

``profile_report`` summarises a py-spy raw file: each on-CPU sample of the profiled loop is
charged to where tiertrace's own code last handed over — the OpenTelemetry entry point it called
(by function name), the client call it wraps, or else tiertrace's own module (stdlib helpers
such as json or threading count for their caller). Samples without a tiertrace frame (the
anchor) are charged to the innermost frame matching ``OTHERS``.
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Callable
from typing import Any

from .modes import activate, around_span
from .services import Env
from .workload import Clients, find_op


def _profiled_loop(fn: Callable[[], Any], seconds: float) -> tuple[int, float, float]:
    n = 0
    c0, t0 = time.thread_time(), time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        for _ in range(100):
            fn()
        n += 100
    return n, time.perf_counter() - t0, time.thread_time() - c0


async def _profiled_loop_async(fn: Callable[[], Any], seconds: float) -> tuple[int, float, float]:
    n = 0
    c0, t0 = time.thread_time(), time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        for _ in range(100):
            await fn()
        n += 100
    return n, time.perf_counter() - t0, time.thread_time() - c0


def profile_loop(env: Env, mode: str, op_name: str, seconds: float, collect: bool) -> None:
    """One operation in one configuration for ``seconds`` (run it under py-spy).

    As in the timed batches the collector is off unless ``collect``.
    """
    op = find_op(op_name)
    if mode not in op.configs:
        raise SystemExit(f"--profile {mode}: {op.name} is not measured in that configuration")
    active = activate(mode)
    clients = Clients(env, mode)
    fn = clients.ops()[op.name]
    if active.tracer is not None:  # ``span``: the call in a bare span
        fn = around_span(fn, active.tracer, op.is_async)

    def run(duration: float) -> tuple[int, float, float]:
        if op.is_async:
            return env.loop.run_until_complete(_profiled_loop_async(fn, duration))
        return _profiled_loop(fn, duration)

    run(min(2.0, seconds / 5))  # warm-up
    gc.collect()
    gc.freeze()
    if not collect:
        gc.disable()
    n, elapsed, cpu = run(seconds)
    gc.enable()
    clients.close()
    active.close()
    print(
        f"profile {mode} {op.name} (gc {'on' if collect else 'off'}): {n} calls, "
        f"{elapsed / n * 1e6:.2f} µs wall, {cpu / n * 1e6:.2f} µs CPU per call"
    )


CLIENT = re.compile(
    r"/(redis|psycopg|psycopg_pool|chromadb|numpy|pydantic|asyncio)/|socket\.py|selectors"
)
OTEL_ENTRY = (
    ("SDK span start (sampler, ids, Span(), start attributes)", r"start_span|start_as_current"),
    ("SDK span attributes, events, name", r"set_attribute|update_name|add_event|set_status"),
    ("SDK span end + batch span processor", r"(^|\.)end$|__exit__"),
    ("SDK histogram record", r"record$|(^|\.)add$"),
    ("OTel logs (logger.enabled, emit)", r"emit$|enabled$"),
    ("OTel context (current span, suppression)", r"get_current_span|get_value|attach|detach"),
)
OWN = (
    ("tiertrace key template (_core/sanitize)", r"tiertrace/_core/sanitize/"),
    ("tiertrace lookup grouping (_lookups/grouping)", r"tiertrace/_lookups/grouping"),
    ("tiertrace lookup close + event payload (_lookups)", r"tiertrace/_lookups/"),
    ("tiertrace stats (_runtime/stats)", r"tiertrace/_runtime/stats"),
    ("tiertrace advisor (_advisor)", r"tiertrace/_advisor/"),
    ("tiertrace observe hook (_runtime)", r"tiertrace/_runtime/"),
    ("tiertrace tier resolution (_core/tiers, _core/binding)", r"tiertrace/_core/(tiers|binding)"),
    ("tiertrace redis begin/done (_instrument/redis)", r"tiertrace/_instrument/redis/"),
    ("tiertrace psycopg begin/done (_instrument/psycopg)", r"tiertrace/_instrument/psycopg/"),
    ("tiertrace chroma begin/done (_instrument/chroma)", r"tiertrace/_instrument/chroma/"),
    ("tiertrace TieredMemory (_memory)", r"tiertrace/_memory/"),
    ("tiertrace recorder + wrapper (_core/recorder, _instrument/base, other)", r"tiertrace/"),
)
OTHERS = (
    ("contrib instrumentation + OTel SDK/API", r"opentelemetry/"),
    ("wrapt", r"/wrapt/"),
)
CLIENT_CALL = "the client call itself (redis-py, psycopg, chromadb, asyncio, sockets)"
LOOP = "the loop itself, interpreter"
_IDLE = re.compile(r"\b(wait|_wait_for_tstate_lock|sleep|select|poll)\b")
_FRAME = re.compile(r"^(.*) \((.*):(\d+)\)$")


def _frames(stack: str) -> list[tuple[str, str, str]]:
    out = []
    for frame in stack.split(";"):
        m = _FRAME.match(frame)
        out.append((m.group(1), m.group(2), m.group(3)) if m else (frame, "", ""))
    return out


def _where(func: str, file: str, lineno: str) -> str:
    return f"{func} ({file.split('site-packages/')[-1].split('/src/')[-1]}:{lineno})"


def classify(frames: list[tuple[str, str, str]]) -> tuple[str, str]:
    """(category, innermost frame) of one sample's stack (root first)."""
    leaf = _where(*frames[-1])
    ours = [i for i, (_, file, _) in enumerate(frames) if "/tiertrace/" in file]
    if not ours:
        for func, file, lineno in reversed(frames):
            if CLIENT.search(file):
                return CLIENT_CALL, leaf
            for name, rx in OTHERS:
                if re.search(rx, file):
                    return name, _where(func, file, lineno)
        return LOOP, leaf
    last = ours[-1]
    if last + 1 < len(frames):
        func, file, _ = frames[last + 1]
        if "/opentelemetry/" in file:
            name = next((n for n, rx in OTEL_ENTRY if re.search(rx, func)), "OTel API, other calls")
            return name, leaf
        if CLIENT.search(file):
            return CLIENT_CALL, leaf
    own_file = frames[last][1]
    return next(n for n, rx in OWN if re.search(rx, own_file)), leaf


def profile_report(path: str, overhead_us: float | None) -> None:
    """Summarise a py-spy file (``--format raw --threads --full-filenames``, no ``--idle``).

    Samples are those in which the calling thread was on CPU, inside the profiled loop. py-spy's
    interruptions inflate the time spent in system calls (the client call itself), so the
    instrumentation categories are also given as shares of the instrumentation's samples only;
    ``overhead_us`` (the measured CPU overhead per call, from the benchmark's CPU table) turns
    those shares into µs per call.
    """
    totals: dict[str, int] = {}
    lines: dict[str, int] = {}
    main_total = worker_active = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = _frames(stack)
            if "MainThread" not in frames[0][0]:
                if not _IDLE.search(frames[-1][0]):
                    worker_active += count
                continue
            if not any(fn.startswith("_profiled_loop") for fn, _, _ in frames):
                continue  # start-up, warm-up
            main_total += count
            category, where = classify(frames)
            totals[category] = totals.get(category, 0) + count
            if category not in (CLIENT_CALL, LOOP):
                lines[where] = lines.get(where, 0) + count

    ours = sum(c for n, c in totals.items() if n not in (CLIENT_CALL, LOOP))

    def fmt(count: int, instrumentation: bool = True) -> str:
        share = count / main_total if main_total else 0.0
        text = f"{share * 100:5.1f} % of all"
        if instrumentation and ours:
            part = count / ours
            text += f"  {part * 100:5.1f} % of instr."
            if overhead_us:
                text += f" {part * overhead_us:6.2f} µs"
        return text

    print(f"{path}: {main_total} on-CPU samples of the profiled loop (main thread)")
    for name, count in sorted(totals.items(), key=lambda kv: -kv[1]):
        own = name not in (CLIENT_CALL, LOOP)
        print(f"  {fmt(count, own):<44}  {name}")
    print(f"  {fmt(worker_active, False):<44}  other threads (batch processor workers), active")
    print("hottest innermost frames of the instrumentation:")
    for where, count in sorted(lines.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {fmt(count):<44}  {where}")
