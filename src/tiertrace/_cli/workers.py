"""``tiertrace demo --workers N``: the demo as N processes, each with its own /metrics.

What one process becoming many looks like, on one machine::

    tiertrace demo --workers 4 --prometheus-port 9464 --duration 0

starts four worker processes (each a ``tiertrace demo`` of its own, with ``--agents`` agent
threads), exporting Prometheus on 127.0.0.1:9464, :9465, :9466 and :9467 (without
``--prometheus-port`` the system picks free ports), prints the ports and a scrape config to
paste into ``prometheus.yml``, and shows the combined figures of all workers in the live view
and the final report (`tiertrace._cli.combine`: counts add up, ratios are recomputed from the
sums). ``--lookups`` and ``--rate`` are totals, shared evenly by the workers; ``--seed`` is the
first worker's, the next ones count up from it.

Each worker keeps to its own Redis keys (``tiertrace-demo:wN:``), PostgreSQL table and Chroma
collection (``tiertrace_demo_memories_wN``), removed when it ends. With ``--start-services``
the private Redis / PostgreSQL are started once, by this process, and shared by the workers.

``--json`` prints the combined snapshot, with ``demo.workers`` (port, pid, lookups per worker)
and ``workers`` (each worker's own final snapshot) added. A worker that fails makes the run
exit 2, with the end of its log on standard error.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tiertrace._cli.combine import combine
from tiertrace._cli.services import Unavailable
from tiertrace._cli.stores import Stores

if TYPE_CHECKING:
    from tiertrace._cli.demo import Options


def ports(opts: Options) -> list[int]:
    """``--prometheus-port`` P, P+1, … or, without it (or with 0), free loopback ports."""
    if opts.prometheus_port:
        return [opts.prometheus_port + i for i in range(opts.workers)]
    found = []
    for _ in range(opts.workers):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            found.append(int(s.getsockname()[1]))
    return found


def scrape_config(targets: list[str], job: str = "tiertrace-demo") -> str:
    """A ``scrape_configs`` entry for ``prometheus.yml`` listing ``targets``."""
    listed = ", ".join(f"'{t}'" for t in targets)
    return (
        "scrape_configs:\n"
        f"  - job_name: {job}\n"
        "    scrape_interval: 15s\n"
        f"    static_configs:\n      - targets: [{listed}]\n"
    )


def _share(total: float, n: int, i: int) -> int:
    return int(total) // n + (1 if i < int(total) % n else 0)


def _command(opts: Options, i: int, port: int, stats: Path) -> list[str]:
    n = opts.workers
    args = [
        sys.executable, "-m", "tiertrace._cli.main", "demo", "--no-live", "--json",
        "--lookups", str(_share(opts.lookups, n, i) if opts.lookups else 0),
        "--duration", f"{opts.duration:g}", "--agents", str(opts.agents),
        "--rate", f"{opts.rate / n:g}", "--ttl", str(opts.ttl_s), "--facts", str(opts.facts),
        "--seed", str(opts.seed + i), "--redis-url", opts.redis_url,
        "--postgres-dsn", opts.postgres_dsn, "--prometheus-port", str(port),
        "--worker-name", f"w{i + 1}", "--worker-stats", str(stats),
    ]  # fmt: skip
    if not opts.precache:
        args.append("--no-precache")
    if opts.chroma_url:
        args += ["--chroma-url", opts.chroma_url]
    if opts.otlp:
        args += ["--otlp", opts.otlp]
    return args


def _read(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-15:])


def run_workers(opts: Options) -> int:
    """Run the demo as ``opts.workers`` processes (see the module documentation)."""
    out: TextIO = sys.stderr if opts.json else sys.stdout
    if opts.lookups and opts.lookups < opts.workers:
        print(f"tiertrace demo: --lookups {opts.lookups} is fewer than one per worker",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        # check the stores (and start private ones) once, for every worker
        stores = Stores(
            opts.redis_url, opts.postgres_dsn, opts.chroma_url, opts.start_services, opts.otlp
        )
        with stores as st:
            for url in st.started:
                print(f"tiertrace demo: started a private server at {url}", file=out)
            shared = replace(opts, redis_url=st.redis_url, postgres_dsn=st.postgres_dsn)
            with tempfile.TemporaryDirectory(prefix="tiertrace-workers-") as tmp:
                return _run(shared, Path(tmp), out)
    except Unavailable as why:
        print(f"tiertrace demo: {why}", file=sys.stderr)
        return 2


def _run(opts: Options, tmp: Path, out: TextIO) -> int:
    from tiertrace._cli import view as _demo_view
    from tiertrace._cli.demo import finish

    chosen = ports(opts)
    targets = [f"127.0.0.1:{p}" for p in chosen]
    print(
        f"tiertrace demo: {opts.workers} worker processes, Prometheus /metrics on "
        + ", ".join(targets)
        + "\nscrape them all with this in prometheus.yml:\n\n"
        + scrape_config(targets),
        file=out,
        flush=True,
    )
    procs: list[subprocess.Popen[bytes]] = []
    stats = [tmp / f"w{i + 1}.stats.json" for i in range(opts.workers)]
    finals = [tmp / f"w{i + 1}.json" for i in range(opts.workers)]
    logs = [tmp / f"w{i + 1}.log" for i in range(opts.workers)]
    view = _demo_view.make_view(opts.live, out, opts.lookups, opts.duration)
    started = time.monotonic()
    try:
        for i, port in enumerate(chosen):
            with finals[i].open("wb") as stdout, logs[i].open("wb") as stderr:
                procs.append(
                    subprocess.Popen(
                        _command(opts, i, port, stats[i]), stdout=stdout, stderr=stderr
                    )
                )
        tick, first = started + 1.0, None
        with view:
            while any(p.poll() is None for p in procs):
                time.sleep(0.2)
                if time.monotonic() >= tick:
                    tick += 1.0
                    seen = [_read(s) for s in stats]
                    if any(seen) and first is None:  # the workers have seeded and started
                        first = time.monotonic() - 1.0
                    done = sum(s.get("demo", {}).get("lookups", 0) for s in seen)
                    view.update(combine(seen), done, time.monotonic() - (first or started))
    except KeyboardInterrupt:
        for p in procs:  # each worker finishes its report and cleans up its stores
            with contextlib.suppress(OSError):
                p.send_signal(signal.SIGINT)
    finally:
        for p in procs:
            try:
                p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    failed = [i for i, p in enumerate(procs) if p.returncode not in (0, None)]
    snaps = [_read(f) for f in finals]
    for i in failed:
        print(f"tiertrace demo: worker w{i + 1} (port {chosen[i]}) exited with status "
              f"{procs[i].returncode}:\n{_tail(logs[i])}", file=sys.stderr)  # fmt: skip
    if failed or not all(snaps) or len(procs) < opts.workers:
        return 2
    snap = combine(snaps)
    snap["demo"] = {
        "lookups": sum(s["demo"]["lookups"] for s in snaps),
        "elapsed_s": max(s["demo"]["elapsed_s"] for s in snaps),  # they run side by side
        "agents": opts.agents,
        "facts": opts.facts,
        "seed": opts.seed,
        "errors": sum(s["demo"].get("errors", 0) for s in snaps),
        "workers": [
            {
                "name": f"w{i + 1}",
                "port": chosen[i],
                "pid": procs[i].pid,
                "lookups": s["demo"]["lookups"],
            }
            for i, s in enumerate(snaps)
        ],
    }
    snap["workers"] = snaps
    finish(opts, snap, out, view.history, 0)
    return 0
