"""The stores behind ``tiertrace demo``: checking they answer, or starting private ones.

``tiertrace demo`` needs a Redis server and a PostgreSQL server; Chroma runs embedded unless
``--chroma-url`` names a server. Before anything else it checks each of them once. When one
does not answer, the demo prints one line saying which, at what address (password hidden)
and how to start it, and exits with status 2::

    $ tiertrace demo --redis-url redis://127.0.0.1:6380/0
    tiertrace demo: Redis is not reachable at redis://127.0.0.1:6380/0 (Connection refused);
    start it with: redis-server --daemonize yes (or rerun with --start-services)

``--start-services`` starts a private ``redis-server`` and/or a private PostgreSQL cluster
(``initdb`` + ``pg_ctl`` from ``/usr/lib/postgresql/<version>/bin``) for whichever of the two
does not answer, on free loopback ports in a temporary directory, and removes them when the
demo ends. It is offered where those programs are installed; as root, PostgreSQL runs as the
``postgres`` system user (``initdb`` refuses root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PG_START_HINT = "pg_ctlcluster <version> main start"
REDIS_START_HINT = "redis-server --daemonize yes"


class Unavailable(Exception):
    """A store does not answer; ``str()`` is the one-line reason shown to the user."""


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (URLs and libpq key=value strings)."""
    if "://" not in url:
        return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", url)
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)
        user = (parts.username or "") + ":***"
        return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))
    except ValueError:
        return "<unparsable URL>"


def pg_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with ``initdb`` and ``pg_ctl``."""
    found = []
    for path in glob.glob("/usr/lib/postgresql/*/bin"):
        bindir = Path(path)
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            version = bindir.parent.name
            found.append((int(version) if version.isdigit() else 0, bindir))
    if found:
        return max(found)[1]
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    return Path(initdb).parent if initdb and pg_ctl else None


def can_start() -> dict[str, bool]:
    """Which private services ``--start-services`` could start on this machine."""
    return {"redis": shutil.which("redis-server") is not None, "postgresql": bool(pg_bindir())}


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _hint(service: str, start: str) -> str:
    extra = " (or rerun with --start-services)" if can_start()[service] else ""
    return f"start it with: {start}{extra}"


def check_redis(url: str) -> None:
    """Raise `Unavailable` unless a Redis server answers PING at ``url``."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    except ValueError as error:
        raise Unavailable(f"Redis URL {redact(url)} is invalid ({_first_line(error)})") from None
    try:
        client.ping()
    except (redis.AuthenticationError, redis.ResponseError) as error:
        raise Unavailable(
            f"Redis at {redact(url)} refused the demo ({_first_line(error)})"
        ) from None
    except Exception as error:
        raise Unavailable(
            f"Redis is not reachable at {redact(url)} ({_first_line(error)}); "
            + _hint("redis", REDIS_START_HINT)
        ) from None
    finally:
        client.close()


def check_postgres(dsn: str) -> None:
    """Raise `Unavailable` unless PostgreSQL accepts a connection with ``dsn``."""
    import psycopg

    try:
        psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error as error:
        raise Unavailable(
            f"PostgreSQL DSN {redact(dsn)} is invalid ({_first_line(error)})"
        ) from None
    try:
        psycopg.connect(dsn, connect_timeout=5, autocommit=True).close()
    except Exception as error:
        if "FATAL:" in str(error):  # the server answered: a role, database or password problem
            raise Unavailable(
                f"PostgreSQL at {redact(dsn)} refused the connection "
                f"({_first_line(error).split('FATAL:', 1)[-1].strip()})"
            ) from None
        raise Unavailable(
            f"PostgreSQL is not reachable at {redact(dsn)} ({_first_line(error)}); "
            + _hint("postgresql", PG_START_HINT)
        ) from None


def check_otlp(url: str) -> None:
    """Raise `Unavailable` unless a TCP connection to the OTLP endpoint ``url`` opens."""
    host, port, _ = chroma_address(url, 4318, "OTLP")
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as error:
        raise Unavailable(
            f"the OTLP collector is not reachable at {redact(url)} ({_first_line(error)}); "
            "start it with: tiertrace assets --out stack && cd stack && docker compose up -d"
        ) from None


def chroma_address(
    url: str, default_port: int = 8000, what: str = "Chroma"
) -> tuple[str, int, bool]:
    """(host, port, ssl) of a server URL such as ``http://127.0.0.1:8000``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise Unavailable(f"{what} URL {redact(url)} is invalid (expected http://host:port)")
    port = port or (443 if parts.scheme == "https" else default_port)
    return parts.hostname, port, parts.scheme == "https"


def check_chroma(url: str) -> None:
    """Raise `Unavailable` unless a TCP connection to the Chroma server at ``url`` opens."""
    host, port, _ = chroma_address(url)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as error:
        raise Unavailable(
            f"Chroma is not reachable at {redact(url)} ({_first_line(error)}); "
            "start it with: chroma run --path ./chroma-data (or leave out --chroma-url)"
        ) from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateServices:
    """Private Redis / PostgreSQL instances for ``--start-services``; a context manager."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="tiertrace-demo-services-"))
        self.redis: subprocess.Popen[bytes] | None = None
        self.pg_data: Path | None = None
        self.pg_bin: Path | None = None
        self.as_postgres: list[str] = []

    def __enter__(self) -> PrivateServices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start_redis(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise Unavailable("--start-services: redis-server is not installed")
        port = free_port()
        self.redis = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        self.wait(lambda: check_redis(url), "redis-server")
        return url

    def start_postgres(self) -> str:
        bindir = pg_bindir()
        if bindir is None:
            raise Unavailable("--start-services: initdb/pg_ctl are not installed")
        self.pg_bin = bindir
        data = self.workdir / "pgdata"
        if os.geteuid() == 0:  # initdb refuses to run as root
            runuser = shutil.which("runuser")
            if runuser is None:
                raise Unavailable("--start-services: running as root and runuser is missing")
            self.as_postgres = [runuser, "-u", "postgres", "--"]
            shutil.chown(self.workdir, "postgres")
        port = free_port()
        self._run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ]
        )
        self.pg_data = data
        options = f"-p {port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.workdir / "postgresql.log")  # keeps the server off pg_ctl's pipes
        self._run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-l", log, "-o", options, "-w", "start"]
        )
        dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self.wait(lambda: check_postgres(dsn), "PostgreSQL")
        return dsn

    def _run(self, argv: list[str]) -> None:
        try:
            done = subprocess.run(
                self.as_postgres + argv, capture_output=True, text=True, timeout=120, check=False
            )
        except subprocess.TimeoutExpired:
            raise Unavailable(f"--start-services: {Path(argv[0]).name} timed out") from None
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()
            raise Unavailable(
                f"--start-services: {Path(argv[0]).name} failed ({why[-1] if why else '?'})"
            )

    @staticmethod
    def wait(check: Callable[[], None], name: str) -> None:
        """Call ``check`` until it stops raising `Unavailable` (20 s at most)."""
        deadline = time.monotonic() + 20
        while True:
            try:
                check()
                return
            except Unavailable:
                if time.monotonic() > deadline:
                    raise Unavailable(f"--start-services: {name} did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop what was started and remove the temporary directory."""
        if self.redis is not None:
            self.redis.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.redis.wait(timeout=10)
            self.redis = None
        if self.pg_data is not None and self.pg_bin is not None:
            with contextlib.suppress(Exception):
                subprocess.run(
                    [
                        *self.as_postgres,
                        str(self.pg_bin / "pg_ctl"),
                        "-D",
                        str(self.pg_data),
                        "-m",
                        "immediate",
                        "-w",
                        "stop",
                    ],
                    capture_output=True,
                    timeout=60,
                    check=False,
                )
            self.pg_data = None
        shutil.rmtree(self.workdir, ignore_errors=True)
