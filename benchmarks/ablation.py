"""CPU time of metrics-only mode with one part of tiertrace switched off at a time.

Usage::

    python benchmarks/ablation.py [--op get|pg_select] [--reps 9] [--calls 4000] [--json FILE]

`instructions.py --ablate` says how many instructions each part of tiertrace's per-access work
executes; this says what they cost in CPU time where they run, right after the client's socket
calls, with the server on the same CPU (as in `overhead.py`, see `harness.services.pin`). For
``none`` (everything on) and each part of `harness.ablation.PARTS` a process of its own starts
with that part made a no-op, then alternates raw and metrics-only (``tiertrace.init(exporter=
"none")``, ALWAYS_OFF tracer provider, an in-memory reader through ``tiertrace.bridge_reader``)
``--reps`` times, one timed batch of ``--calls`` Redis GET hits (or psycopg SELECTs by primary
key) each, the collector off. Reported: the median over the repetitions of metrics-only minus
raw, CPU µs per call of the calling thread, and what switching each part off saved.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from harness.ablation import PARTS, switch_off
from harness.modes import activate
from harness.services import PgDatabase, RedisServer, pin, pin_cpu
from harness.timing import rotated, timed_batch
from harness.workload import SELECT_PK

OPS = ("get", "pg_select")


def _client(target: str, cpu: int | None) -> tuple[Callable[[], Any], Callable[[], None]]:
    """The timed call on ``target`` (a Redis URL or a PostgreSQL DSN) and how to close it."""
    if target.startswith("redis:"):
        import redis

        r = redis.Redis.from_url(target)
        r.set("bench:hit", "v")
        return (lambda: r.get("bench:hit")), r.close
    import psycopg

    conn = psycopg.connect(target, autocommit=True)
    pin(conn.info.backend_pid, cpu)
    cur = conn.cursor()

    def select() -> None:
        cur.execute(SELECT_PK, (42,))
        cur.fetchone()

    return select, conn.close


def child(part: str, target: str, reps: int, calls: int) -> list[float]:
    """Per repetition: metrics-only minus raw, CPU µs per call (run as ``--child``)."""
    cpu = pin_cpu()
    gc.collect()
    gc.freeze()
    if part != "none":
        switch_off(part)
    diffs = []
    for rep in range(reps):
        cpu_us: dict[str, float] = {}
        for config in rotated(("raw", "metrics"), rep):
            active = activate(config)
            call, close = _client(target, cpu)
            cpu_us[config] = timed_batch(call, calls)[1]
            close()
            active.close()
        diffs.append(cpu_us["metrics"] - cpu_us["raw"])
    return diffs


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--child"]:
        print(json.dumps(child(args[1], args[2], int(args[3]), int(args[4]))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--op", choices=OPS, default="get", help="the call timed (default: get)")
    ap.add_argument("--reps", type=int, default=9, help="repetitions per part (default 9)")
    ap.add_argument("--calls", type=int, default=4000, help="calls per timed batch (default 4000)")
    ap.add_argument("--json", metavar="FILE", help="write the per-repetition figures as JSON")
    opts = ap.parse_args(args)
    cpu = pin_cpu()  # the servers go where the children pin themselves
    server: RedisServer | PgDatabase
    if opts.op == "get":
        server = RedisServer(cpu)
        target = server.url
    else:
        server = PgDatabase()
        target = server.dsn
    result: dict[str, list[float]] = {}
    try:
        for part in ("none", *PARTS):
            argv_child = ["--child", part, target, str(opts.reps), str(opts.calls)]
            done = subprocess.run(
                [sys.executable, __file__, *argv_child], capture_output=True, text=True, check=True
            )
            result[part] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  {part}: done", file=sys.stderr, flush=True)
    finally:
        if isinstance(server, PgDatabase):
            server.drop()
        else:
            server.stop()
    everything = statistics.median(result["none"])
    print(f"metrics-only over raw, CPU µs per call ({opts.op}, median of {opts.reps}):")
    print(f"  {'everything on':<34}{everything:>8.2f}")
    for part in PARTS:
        without = statistics.median(result[part])
        print(f"  {'without ' + part:<34}{without:>8.2f}   ({everything - without:+.2f} saved)")
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
