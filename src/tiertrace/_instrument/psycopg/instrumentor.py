"""PostgreSQL (L2 by default): psycopg 3 sync and async connections, pools, cursors.

Each ``execute`` (on a cursor or on the connection), ``executemany`` (one access with
``db.operation.batch.size``) and ``copy`` block is one access. Transaction control and session
housekeeping (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, SET, SHOW, RESET, DISCARD, LISTEN …) and DDL
(CREATE, ALTER, DROP, TRUNCATE, VACUUM, ANALYZE, GRANT …) are not accesses: they are schema and
session work, not memory reads or writes, and counting them would distort hit rates and cost.

Hit rules: a SELECT (also ``WITH … SELECT``, ``VALUES``, ``TABLE``) or a statement with
``RETURNING`` is a read; it hits when it returned at least one row. Where the row count is not
known when ``execute`` returns — a named (server-side) cursor, whose ``rowcount`` stays −1, or
pipeline mode, where results arrive at sync — the access stays open and the hit is decided by the
first fetch (its duration is added); if nothing is ever fetched, the access is closed when the
cursor executes again, closes or is collected, with the row count if it became known and
otherwise with no hit attribute (never a false miss). INSERT/UPDATE/DELETE/COPY are writes.

Spans carry ``db.query.text`` (parameterized text kept, literals replaced by ``?``; turn off
with ``capture_query_text=False``), ``db.query.summary`` (operation and tables), the table as
``db.collection.name``, ``db.namespace``, ``server.address``/``server.port`` and, on failure,
the SQLSTATE as ``db.response.status_code``. Parameters are never captured.

Example (after ``tiertrace.init()``)::

    import psycopg
    with psycopg.connect("postgresql://postgres@127.0.0.1/app") as conn:
        conn.execute("SELECT body FROM memories WHERE id = %s", (42,)).fetchone()
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Sized
from time import perf_counter
from typing import Any

from opentelemetry.trace import SpanKind

from tiertrace._core import recorder as _access
from tiertrace._core.binding import ATTR, Switch, tier_of
from tiertrace._core.patching import Patches
from tiertrace._instrument import registry
from tiertrace._instrument.base import TierInstrumentor, wrappers
from tiertrace._instrument.psycopg.sql import CopyBlock, Statement, query_text, sqlstate, statement

_SWITCH = Switch()
_PATCHES = Patches()
_PENDING: dict[int, tuple[Any, _access.Access]] = {}


def _tier(cursor: Any, stmt: Statement) -> Any:
    conn = getattr(cursor, "_conn", None)
    bound = getattr(conn, ATTR, None)
    if bound is None:
        bound = getattr(getattr(conn, "_pool", None), ATTR, None)
    return tier_of(bound, _SWITCH, "postgresql", stmt.tables)


def _begin(
    cursor: Any, query: Any, batch: int | None = None
) -> tuple[_access.Access, Statement] | None:
    ctx = _access.active()
    if ctx is None:
        return None
    if _PENDING:
        _flush(cursor)
    stmt = statement(query if type(query) is str else query_text(query, cursor))
    if stmt is None:
        return None
    tier = _tier(cursor, stmt)
    if tier is None:
        return None
    st = _access.STATE
    if st.tracer is not None:  # span attributes at start, built once per statement and connection
        text = stmt.span_text if st.capture_query_text else stmt.span_summary
        server = _server(cursor)
        acc = _access.start(tier, stmt.op, stmt.target, SpanKind.CLIENT, text, server, ctx)
    else:
        acc = _access.start(tier, stmt.op, stmt.target, SpanKind.CLIENT, None, None, ctx)
    acc.pattern = stmt.fingerprint
    acc.read = stmt.is_read
    if batch is not None and acc.recording:
        acc.span.set_attribute("db.operation.batch.size", batch)
    return acc, stmt


def _server(cursor: Any) -> dict[str, Any] | None:
    """``db.namespace``, ``server.address``, ``server.port`` of a cursor's connection, built
    once per connection (each is a libpq call), one dict for all connections alike."""
    conn = getattr(cursor, "_conn", None)
    attrs: dict[str, Any] | None = getattr(conn, "_tiertrace_server", None)
    if attrs is None and conn is not None:
        info = conn.info
        attrs = _access.shared(
            {
                "db.namespace": info.dbname,
                "server.address": info.host,
                "server.port": int(info.port),
            }
        )
        with contextlib.suppress(AttributeError, TypeError):
            conn._tiertrace_server = attrs
    return attrs


def _after_execute(cursor: Any, acc: _access.Access, stmt: Statement, server: bool) -> None:
    if not stmt.is_read:
        _access.finish(acc, None)
        return
    rows = -1 if server or cursor.pgresult is None else cursor.rowcount
    if rows >= 0:
        acc.rows = rows
        _access.finish(acc, rows > 0)
        return
    _access.stop_clock(acc)  # decided at first fetch
    key = id(cursor)
    _PENDING[key] = (weakref.ref(cursor, _collected(key)), acc)


def _collected(key: int) -> Callable[[Any], None]:
    """Weakref callback: a cursor collected with its access still open closes it."""
    return lambda _ref: _flush_id(key, None)


def _flush_id(key: int, rows: int | None) -> None:
    entry = _PENDING.pop(key, None)
    if entry is not None:
        acc = entry[1]
        acc.rows = rows if rows is not None and rows >= 0 else None
        _access.finish_later(acc, None if acc.rows is None else acc.rows > 0)


def _flush(cursor: Any) -> None:
    """Close a pending access of ``cursor`` with what is known now."""
    if id(cursor) in _PENDING:
        rows = cursor.rowcount if cursor.pgresult is not None else -1
        _flush_id(id(cursor), rows)


def flush_all() -> None:
    """Close every pending access (shutdown)."""
    for key in list(_PENDING):
        _flush_id(key, None)


def _fetched(cursor: Any, result: Any, seconds: float) -> None:
    entry = _PENDING.pop(id(cursor), None)
    if entry is None:
        return
    acc = entry[1]
    rows = cursor.rowcount if cursor.pgresult is not None else -1
    if rows >= 0:
        acc.rows = rows
        found = rows > 0
    else:
        found = bool(result) if isinstance(result, list) else result is not None
    _access.finish_later(acc, found, seconds)


def _execute_begin(cursor: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return _begin(cursor, args[0] if args else kwargs.get("query"))


def _client_done(acc: _access.Access, stmt: Statement, cursor: Any, _result: Any) -> None:
    _after_execute(cursor, acc, stmt, server=False)


def _server_done(acc: _access.Access, stmt: Statement, cursor: Any, _result: Any) -> None:
    _after_execute(cursor, acc, stmt, server=True)


def _many_begin(cursor: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    query = args[0] if args else kwargs.get("query")
    seq = args[1] if len(args) > 1 else kwargs.get("params_seq")
    return _begin(cursor, query, len(seq) if isinstance(seq, Sized) else None)


def _write_done(acc: _access.Access, _stmt: Any, _cursor: Any, _result: Any) -> None:
    _access.finish(acc, None)


_exec, _exec_async = wrappers("psycopg", _execute_begin, _client_done, sqlstate)
_server_exec, _server_exec_async = wrappers("psycopg", _execute_begin, _server_done, sqlstate)
_executemany, _executemany_async = wrappers("psycopg", _many_begin, _write_done, sqlstate)


# the patches of the fetches, ``__next__``, ``close`` and ``copy``: like those of `wrappers`, each
# makes, from the cursor's own method, the plain function installed in its place


def _fetch(original: Callable[..., Any]) -> Callable[..., Any]:
    """``fetchone``/``fetchmany``/``fetchall`` and ``__next__``: the first call after a pending
    execute decides its hit (running out, ``StopIteration``, is no row)."""

    def fetch(instance: Any, /, *args: Any, **kwargs: Any) -> Any:
        if not _PENDING or id(instance) not in _PENDING:
            return original(instance, *args, **kwargs)
        t0 = perf_counter()
        try:
            result = original(instance, *args, **kwargs)
        except StopIteration:
            _fetched(instance, None, perf_counter() - t0)
            raise
        _fetched(instance, result, perf_counter() - t0)
        return result

    return fetch


def _fetch_async(original: Callable[..., Any]) -> Callable[..., Any]:
    """`_fetch` of the async cursors (``__anext__``: ``StopAsyncIteration``)."""

    async def fetch(instance: Any, /, *args: Any, **kwargs: Any) -> Any:
        if not _PENDING or id(instance) not in _PENDING:
            return await original(instance, *args, **kwargs)
        t0 = perf_counter()
        try:
            result = await original(instance, *args, **kwargs)
        except StopAsyncIteration:
            _fetched(instance, None, perf_counter() - t0)
            raise
        _fetched(instance, result, perf_counter() - t0)
        return result

    return fetch


def _close(original: Callable[..., Any]) -> Callable[..., Any]:
    def close(instance: Any, /, *args: Any, **kwargs: Any) -> Any:
        if _PENDING:
            _flush(instance)
        return original(instance, *args, **kwargs)

    return close


def _close_async(original: Callable[..., Any]) -> Callable[..., Any]:
    async def close(instance: Any, /, *args: Any, **kwargs: Any) -> Any:
        if _PENDING:
            _flush(instance)
        return await original(instance, *args, **kwargs)

    return close


def _connection_close(original: Callable[..., Any]) -> Callable[..., Any]:
    """A connection closing: what tiertrace queued of its work is handled now, so nothing of a
    closed connection's work stays alive (psycopg's own leak tests count live objects after
    each connection's work)."""

    def close(instance: Any, /, *args: Any, **kwargs: Any) -> Any:
        _access.settle()
        return original(instance, *args, **kwargs)

    return close


def _connection_close_async(original: Callable[..., Any]) -> Callable[..., Any]:
    async def close(instance: Any, /, *args: Any, **kwargs: Any) -> Any:
        _access.settle()
        return await original(instance, *args, **kwargs)

    return close


def _copy(original: Callable[..., Any]) -> Callable[..., Any]:
    def copy(instance: Any, /, *args: Any, **kwargs: Any) -> Any:
        started = None
        try:
            started = _begin(instance, args[0] if args else kwargs.get("statement"))
        except Exception as fault:
            _access.report_fault("psycopg", fault)
        inner = original(instance, *args, **kwargs)
        return inner if started is None else CopyBlock(inner, started[0])

    return copy


_FETCHES = ("fetchone", "fetchmany", "fetchall")
_TARGETS = (
    ("psycopg", "Connection.close", _connection_close),
    ("psycopg", "AsyncConnection.close", _connection_close_async),
    ("psycopg", "Cursor.execute", _exec),
    ("psycopg", "Cursor.executemany", _executemany),
    ("psycopg", "Cursor.copy", _copy),
    ("psycopg", "Cursor.close", _close),
    *(("psycopg", f"Cursor.{name}", _fetch) for name in _FETCHES),
    ("psycopg", "ServerCursor.execute", _server_exec),
    ("psycopg", "ServerCursor.close", _close),
    ("psycopg", "ServerCursor.__next__", _fetch),
    *(("psycopg", f"ServerCursor.{name}", _fetch) for name in _FETCHES),
    ("psycopg", "AsyncCursor.execute", _exec_async),
    ("psycopg", "AsyncCursor.executemany", _executemany_async),
    ("psycopg", "AsyncCursor.copy", _copy),
    ("psycopg", "AsyncCursor.close", _close_async),
    *(("psycopg", f"AsyncCursor.{name}", _fetch_async) for name in _FETCHES),
    ("psycopg", "AsyncServerCursor.execute", _server_exec_async),
    ("psycopg", "AsyncServerCursor.close", _close_async),
    ("psycopg", "AsyncServerCursor.__anext__", _fetch_async),
    *(("psycopg", f"AsyncServerCursor.{name}", _fetch_async) for name in _FETCHES),
)


class PsycopgInstrumentor(TierInstrumentor):
    """Instruments psycopg 3 (sync, async, pools, server cursors) for tiertrace.

    `tiertrace.init` starts it for you (``instrument=`` chooses which clients); use it
    directly only to bind one client to a tier, or under ``opentelemetry-instrument``, which
    finds it through its ``opentelemetry_instrumentor`` entry point. It follows
    OpenTelemetry's ``BaseInstrumentor``: ``instrument()``, ``uninstrument()``.

    ``instrument_client(client, tier=None)`` binds a connection, or every connection a
    ``psycopg_pool`` pool hands out to ``tier`` (a tier name or a `Tier`) (None: resolve by the
    tiers' ``match``), whatever its keys, tables or collections; ``uninstrument_client(client)``
    removes the binding. An unknown tier name, or a tier of another system, raises
    `ConfigError`.

    Example:
        ```python
        tiertrace.init(tiers=[Tier("sessions", 1, "postgresql", 0.00005), ...])
        PsycopgInstrumentor().instrument_client(client, tier="sessions")
        ```
    """

    client = "psycopg"
    system = "postgresql"
    dependency = "psycopg >= 3.1"
    targets = _TARGETS
    switch = _SWITCH
    patches = _PATCHES

    @classmethod
    def flush_pending(cls) -> None:
        """Close the accesses of server cursors and pipelines whose rows never arrived."""
        flush_all()


registry.register(PsycopgInstrumentor)
