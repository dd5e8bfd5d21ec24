"""The ``tiertrace`` command.

::

    tiertrace demo                     # agent-memory workload on Redis, PostgreSQL and Chroma
    tiertrace demo --workers 4         # the same as 4 processes, each with its own /metrics
    tiertrace report --snapshot FILE   # report from a tiertrace.stats() snapshot
    tiertrace report --prometheus URL  # report evaluated in PromQL by Prometheus
    tiertrace assets --out DIR         # copy the collector / Prometheus / Grafana stack
    tiertrace --version

Every command has ``--help``. Exit status: 0 ok; 1 when ``report --check`` finds a missed
target; 2 on a usage error or when a service (Redis, PostgreSQL, Chroma, Prometheus) cannot be
reached or a file cannot be read — with one line on standard error saying why.
See `tiertrace._cli.demo`, `tiertrace._cli.report`, `tiertrace._cli.html` and
`tiertrace._cli.assets` for
what each command does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tiertrace._version import __version__


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _facts(text: str) -> int:
    value = int(text)
    if not 10 <= value <= 5000:
        raise argparse.ArgumentTypeError(f"must be between 10 and 5000, got {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text}")
    return value


def _demo_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from tiertrace._cli.services import can_start

    p = sub.add_parser(
        "demo",
        help="run an agent-memory workload on real Redis, PostgreSQL and Chroma",
        description="Several agents ask Zipf-distributed questions through TieredMemory "
        "(Redis L1 -> PostgreSQL L2 -> Chroma L3) while a live view shows the tiers warm up; "
        "a final report follows. Only the demo's own keys, table and collection are written, "
        "and removed at the end.",
    )
    p.add_argument(
        "--lookups", type=_count, help="stop after N lookups (default 3000; 0 = no limit)"
    )
    p.add_argument(
        "--duration",
        type=_seconds,
        help="stop after S seconds (0 = until Ctrl-C; default: no limit on a terminal, else 90)",
    )
    p.add_argument("--agents", type=_positive, default=4, help="simulated agents (default 4)")
    p.add_argument(
        "--rate",
        type=_seconds,
        default=150.0,
        help="lookups per second in total (default 150; 0 = as fast as possible)",
    )
    p.add_argument("--ttl", type=_positive, default=3, help="Redis TTL in seconds (default 3)")
    p.add_argument(
        "--facts",
        type=_facts,
        default=2000,
        help="facts in the corpus (default 2000, at most 5000)",
    )
    p.add_argument(
        "--no-precache", action="store_true", help="do not act on the pre-cache suggestions"
    )
    p.add_argument("--no-live", action="store_true", help="plain progress lines, no live view")
    p.add_argument(
        "--json", action="store_true", help="print only the final JSON summary on stdout"
    )
    p.add_argument("--snapshot", metavar="FILE", help="write the final stats snapshot JSON here")
    p.add_argument("--prometheus-port", type=_port, metavar="P", help="serve /metrics on port P")
    p.add_argument("--otlp", metavar="URL", help="export over OTLP to URL")
    p.add_argument(
        "--redis-url",
        metavar="URL",
        default="redis://127.0.0.1:6379/0",
        help="Redis for L1; only keys under tiertrace-demo: are written (default %(default)s)",
    )
    p.add_argument(
        "--postgres-dsn",
        metavar="DSN",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL for L2; the demo creates and drops its own table (default %(default)s)",
    )
    p.add_argument("--chroma-url", metavar="URL", help="a Chroma server (default: embedded)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="run N worker processes, each serving /metrics on its own port (from "
        "--prometheus-port up, else free ports); shows their combined figures (default 1)",
    )
    # set by `--workers` for each worker process: its namespace and where its stats go
    p.add_argument("--worker-name", default="", help=argparse.SUPPRESS)
    p.add_argument("--worker-stats", help=argparse.SUPPRESS)
    available = [name for name, ok in can_start().items() if ok]
    p.add_argument(
        "--start-services",
        action="store_true",
        help="start private "
        + (" / ".join(available) if available else "Redis / PostgreSQL (not installed here)")
        + " instances for those not reachable, removed at the end",
    )


def _report_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="report hit rates, latency, cost and suggestions",
        description="Per-tier table, targets, daily/monthly cost projection and suggestions, "
        "from a snapshot file or from Prometheus.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--snapshot", metavar="FILE", help="a tiertrace.stats() snapshot JSON")
    source.add_argument("--prometheus", metavar="URL", help="Prometheus base URL")
    p.add_argument("--range", default="1h", help="PromQL window for --prometheus (default 1h)")
    p.add_argument(
        "--window", action="store_true", help="snapshot: report the window view, not totals"
    )
    p.add_argument("--json", action="store_true", help="print the normalized report as JSON")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tiertrace`` command."""
    parser = argparse.ArgumentParser(
        prog="tiertrace",
        description="OpenTelemetry for three-tier agent memory: Redis (L1), PostgreSQL (L2), "
        "Chroma (L3).",
    )
    parser.add_argument("--version", action="version", version=f"tiertrace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{demo,report,assets}")
    _demo_parser(sub)
    _report_parser(sub)
    a = sub.add_parser(
        "assets",
        help="copy the observability stack (collector, Prometheus, Grafana, compose)",
        description="Copy otel-collector.yaml, the Prometheus rules and alerts, the Grafana "
        "dashboards and docker-compose.yml into a directory.",
    )
    a.add_argument(
        "--out", default="tiertrace-stack", help="target directory (default ./tiertrace-stack)"
    )
    return parser


def _fail(message: str) -> int:
    print(f"tiertrace: {message}", file=sys.stderr)
    return 2


def cmd_demo(args: argparse.Namespace) -> int:
    from tiertrace._cli.demo import Options, run

    tty = sys.stdout.isatty()
    lookups = (
        args.lookups if args.lookups is not None else (0 if args.duration is not None else 3000)
    )
    duration = args.duration if args.duration is not None else (0.0 if tty else 90.0)
    opts = Options(
        lookups=lookups,
        duration=duration,
        agents=args.agents,
        rate=args.rate,
        ttl_s=args.ttl,
        facts=args.facts,
        precache=not args.no_precache,
        live=not (args.no_live or args.json),
        json=args.json,
        snapshot=args.snapshot,
        prometheus_port=args.prometheus_port,
        otlp=args.otlp,
        redis_url=args.redis_url,
        postgres_dsn=args.postgres_dsn,
        chroma_url=args.chroma_url,
        start_services=args.start_services,
        seed=args.seed,
        workers=args.workers,
        namespace=args.worker_name,
        worker_stats=args.worker_stats,
    )
    return run(opts)


def cmd_report(args: argparse.Namespace) -> int:
    from tiertrace._cli import report as _report

    try:
        if args.snapshot is not None:
            snap = _report.load_snapshot(args.snapshot)
            report = _report.from_snapshot(
                snap, f"snapshot {args.snapshot}", "window" if args.window else "total"
            )
        else:
            from tiertrace._cli.prometheus import from_prometheus

            report = from_prometheus(args.prometheus, args.range)
    except _report.ReportError as why:
        return _fail(str(why))
    if args.html:
        from tiertrace._cli.html import render_html

        try:
            Path(args.html).write_text(render_html(report), encoding="utf-8")
        except OSError as error:
            return _fail(f"cannot write {args.html}: {error.strerror or error}")
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        sys.stdout.write(_report.render_text(report))
        if args.html:
            sys.stdout.write(f"\nHTML report written to {args.html}\n")
    if args.check and _report.missed(report):
        names = ", ".join(t["name"] for t in _report.missed(report))
        print(f"tiertrace report: targets missed: {names}", file=sys.stderr)
        return 1
    return 0


def cmd_assets(args: argparse.Namespace) -> int:
    from tiertrace._cli.assets import write_assets

    try:
        written = write_assets(Path(args.out))
    except (FileNotFoundError, OSError) as error:
        return _fail(f"cannot write the assets: {error}")
    for path in written:
        print(path)
    print(
        f"\nnext: cd {args.out} && GRAFANA_ADMIN_PASSWORD=... docker compose up -d",
        file=sys.stderr,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tiertrace`` command; returns the exit status."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    commands = {"demo": cmd_demo, "report": cmd_report, "assets": cmd_assets}
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
