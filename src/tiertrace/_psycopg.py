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

import weakref
from collections.abc import Collection
from functools import lru_cache
from time import perf_counter
from typing import Any, NamedTuple

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.trace import SpanKind

from . import _access
from ._binding import ATTR, EXCLUDED, MATCH, TIERS, Switch, bind, unbind
from ._patch import Patches
from ._sanitize import sanitize_sql, sql_operation, sql_summary, sql_tables

_NOT_ACCESS = frozenset(
    "BEGIN START COMMIT END ROLLBACK ABORT SAVEPOINT RELEASE PREPARE DEALLOCATE SET SHOW RESET "
    "DISCARD LISTEN UNLISTEN NOTIFY LOAD CHECKPOINT CREATE ALTER DROP TRUNCATE COMMENT GRANT "
    "REVOKE VACUUM ANALYZE REINDEX CLUSTER LOCK DECLARE CLOSE MOVE DO UNKNOWN".split()
)
_READS = frozenset(("SELECT", "VALUES", "TABLE", "FETCH"))


class Statement(NamedTuple):
    op: str
    target: str
    tables: tuple[str, ...]
    is_read: bool
    text: str
    summary: str


@lru_cache(maxsize=2048)
def _statement(sql: str) -> Statement | None:
    op = sql_operation(sql)
    if op in _NOT_ACCESS:
        return None
    tables = sql_tables(sql)
    text = sanitize_sql(sql)
    names = tables + tuple(t.rsplit(".", 1)[-1] for t in tables if "." in t)
    is_read = op in _READS or " RETURNING " in f" {text.upper()} "
    return Statement(op, tables[0] if tables else "", names, is_read, text, sql_summary(sql))


def _query_text(query: Any, cursor: Any) -> str:
    if isinstance(query, str):
        return query
    if isinstance(query, bytes):
        return query.decode("utf-8", "replace")
    try:
        return str(query.as_string(cursor))
    except Exception:
        return str(query)


_SWITCH = Switch()
_PATCHES = Patches()
_PENDING: dict[int, tuple[Any, _access.Access]] = {}


def _tier(cursor: Any, stmt: Statement) -> Any:
    conn = getattr(cursor, "_conn", None)
    bound = getattr(conn, ATTR, None)
    if bound is None:
        bound = getattr(getattr(conn, "_pool", None), ATTR, None)
    if bound is not None and bound is not MATCH:
        return None if bound is EXCLUDED else bound
    if bound is None and not _SWITCH.all:
        return None
    tiers = TIERS.maps["postgresql"]
    return tiers.only or tiers.resolve_any(stmt.tables)


def _begin(cursor: Any, query: Any, batch: int | None = None) -> tuple[_access.Access, Statement] | None:
    if not _access.active():
        return None
    if _PENDING:
        _flush(cursor)
    stmt = _statement(_query_text(query, cursor))
    if stmt is None:
        return None
    tier = _tier(cursor, stmt)
    if tier is None:
        return None
    acc = _access.start(tier, stmt.op, stmt.target, SpanKind.CLIENT, _PATCHES.inner_wrapped)
    acc.pattern = stmt.text
    acc.read = stmt.is_read
    if acc.recording:
        attrs: dict[str, Any] = {"db.query.summary": stmt.summary}
        if _access.STATE.capture_query_text:
            attrs["db.query.text"] = stmt.text
        if batch is not None:
            attrs["db.operation.batch.size"] = batch
        info = getattr(getattr(cursor, "_conn", None), "info", None)
        if info is not None:
            attrs["db.namespace"] = info.dbname
            attrs["server.address"] = info.host
            attrs["server.port"] = int(info.port)
        acc.span.set_attributes(attrs)
    return acc, stmt


def _after_execute(cursor: Any, acc: _access.Access, stmt: Statement, server: bool) -> None:
    try:
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
        _PENDING[key] = (weakref.ref(cursor, lambda _r, k=key: _flush_id(k, None)), acc)
    except Exception as fault:
        _access.report_fault("psycopg", fault)


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


def _execute(server: bool) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        started = None
        try:
            started = _begin(instance, args[0] if args else kwargs.get("query"))
        except Exception as fault:
            _access.report_fault("psycopg", fault)
        if started is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            _access.fail(started[0], exc, getattr(exc, "sqlstate", None))
            raise
        _after_execute(instance, started[0], started[1], server)
        return result

    async def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        started = None
        try:
            started = _begin(instance, args[0] if args else kwargs.get("query"))
        except Exception as fault:
            _access.report_fault("psycopg", fault)
        if started is None:
            return await wrapped(*args, **kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            _access.fail(started[0], exc, getattr(exc, "sqlstate", None))
            raise
        _after_execute(instance, started[0], started[1], server)
        return result

    return wrapper, async_wrapper


def _executemany(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    started = _many_begin(instance, args, kwargs)
    if started is None:
        return wrapped(*args, **kwargs)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        _access.fail(started, exc, getattr(exc, "sqlstate", None))
        raise
    _access.finish(started, None)
    return result


async def _executemany_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    started = _many_begin(instance, args, kwargs)
    if started is None:
        return await wrapped(*args, **kwargs)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        _access.fail(started, exc, getattr(exc, "sqlstate", None))
        raise
    _access.finish(started, None)
    return result


def _many_begin(cursor: Any, args: Any, kwargs: Any) -> _access.Access | None:
    try:
        query = args[0] if args else kwargs.get("query")
        seq = args[1] if len(args) > 1 else kwargs.get("params_seq")
        started = _begin(cursor, query, len(seq) if hasattr(seq, "__len__") else None)
        return None if started is None else started[0]
    except Exception as fault:
        _access.report_fault("psycopg", fault)
        return None


def _fetch(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not _PENDING or id(instance) not in _PENDING:
        return wrapped(*args, **kwargs)
    t0 = perf_counter()
    result = wrapped(*args, **kwargs)
    _fetched(instance, result, perf_counter() - t0)
    return result


async def _fetch_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not _PENDING or id(instance) not in _PENDING:
        return await wrapped(*args, **kwargs)
    t0 = perf_counter()
    result = await wrapped(*args, **kwargs)
    _fetched(instance, result, perf_counter() - t0)
    return result


def _next(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not _PENDING or id(instance) not in _PENDING:
        return wrapped(*args, **kwargs)
    t0 = perf_counter()
    try:
        row = wrapped(*args, **kwargs)
    except StopIteration:
        _fetched(instance, None, perf_counter() - t0)
        raise
    _fetched(instance, row, perf_counter() - t0)
    return row


async def _anext(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not _PENDING or id(instance) not in _PENDING:
        return await wrapped(*args, **kwargs)
    t0 = perf_counter()
    try:
        row = await wrapped(*args, **kwargs)
    except StopAsyncIteration:
        _fetched(instance, None, perf_counter() - t0)
        raise
    _fetched(instance, row, perf_counter() - t0)
    return row


def _close(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if _PENDING:
        _flush(instance)
    return wrapped(*args, **kwargs)


async def _close_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if _PENDING:
        _flush(instance)
    return await wrapped(*args, **kwargs)


class _Copy:
    """Wraps the context manager of ``cursor.copy()``: the block is one access (a write)."""

    def __init__(self, inner: Any, acc: _access.Access) -> None:
        self.inner = inner
        self.acc = acc

    def _exit(self, exc: BaseException | None, suppressed: bool) -> None:
        if exc is not None and not suppressed:
            _access.fail(self.acc, exc, getattr(exc, "sqlstate", None))
        else:
            _access.finish(self.acc, None)

    def __enter__(self) -> Any:
        try:
            return self.inner.__enter__()
        except BaseException as exc:
            _access.fail(self.acc, exc, getattr(exc, "sqlstate", None))
            raise

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            suppressed = self.inner.__exit__(*exc_info)
        except BaseException as exc:
            _access.fail(self.acc, exc, getattr(exc, "sqlstate", None))
            raise
        self._exit(exc_info[1], bool(suppressed))
        return suppressed

    async def __aenter__(self) -> Any:
        try:
            return await self.inner.__aenter__()
        except BaseException as exc:
            _access.fail(self.acc, exc, getattr(exc, "sqlstate", None))
            raise

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            suppressed = await self.inner.__aexit__(*exc_info)
        except BaseException as exc:
            _access.fail(self.acc, exc, getattr(exc, "sqlstate", None))
            raise
        self._exit(exc_info[1], bool(suppressed))
        return suppressed


def _copy(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    started = None
    try:
        started = _begin(instance, args[0] if args else kwargs.get("statement"))
    except Exception as fault:
        _access.report_fault("psycopg", fault)
    inner = wrapped(*args, **kwargs)
    return inner if started is None else _Copy(inner, started[0])


_exec, _exec_async = _execute(server=False)
_server_exec, _server_exec_async = _execute(server=True)
_FETCHES = ("fetchone", "fetchmany", "fetchall")
_TARGETS = (
    ("psycopg", "Cursor.execute", _exec),
    ("psycopg", "Cursor.executemany", _executemany),
    ("psycopg", "Cursor.copy", _copy),
    ("psycopg", "Cursor.close", _close),
    *(("psycopg", f"Cursor.{name}", _fetch) for name in _FETCHES),
    ("psycopg", "ServerCursor.execute", _server_exec),
    ("psycopg", "ServerCursor.close", _close),
    ("psycopg", "ServerCursor.__next__", _next),
    *(("psycopg", f"ServerCursor.{name}", _fetch) for name in _FETCHES),
    ("psycopg", "AsyncCursor.execute", _exec_async),
    ("psycopg", "AsyncCursor.executemany", _executemany_async),
    ("psycopg", "AsyncCursor.copy", _copy),
    ("psycopg", "AsyncCursor.close", _close_async),
    *(("psycopg", f"AsyncCursor.{name}", _fetch_async) for name in _FETCHES),
    ("psycopg", "AsyncServerCursor.execute", _server_exec_async),
    ("psycopg", "AsyncServerCursor.close", _close_async),
    ("psycopg", "AsyncServerCursor.__anext__", _anext),
    *(("psycopg", f"AsyncServerCursor.{name}", _fetch_async) for name in _FETCHES),
)


class PsycopgInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments psycopg 3 (sync, async, pools, server cursors) for tiertrace.

    ``instrument()`` covers every connection; ``instrument_client(conn_or_pool, tier=...)``
    binds one connection, or every connection a ``psycopg_pool`` pool hands out.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("psycopg >= 3.1",)

    def _instrument(self, **kwargs: Any) -> None:
        _ensure_patched()
        _SWITCH.all = True

    def _uninstrument(self, **kwargs: Any) -> None:
        _SWITCH.all = False
        flush_all()
        with _SWITCH.lock:
            _PATCHES.unpatch()
            _SWITCH.patched = False

    def instrument_client(self, client: Any, tier: Any = None) -> None:
        """Bind a connection or pool to ``tier`` (None: resolve by the tiers' table match)."""
        _ensure_patched()
        bind(client, MATCH if tier is None else TIERS.named(tier, "postgresql"))

    def uninstrument_client(self, client: Any) -> None:
        """Remove the binding; under global instrumentation, exclude the client from it."""
        unbind(client, exclude=_SWITCH.all)


def _ensure_patched() -> None:
    with _SWITCH.lock:
        if not _SWITCH.patched:
            for module, qualname, wrapper in _TARGETS:
                _PATCHES.patch(module, qualname, wrapper)
            _SWITCH.patched = True
