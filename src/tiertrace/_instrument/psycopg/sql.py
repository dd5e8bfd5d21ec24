"""PostgreSQL statements: which are accesses, which are reads, what goes on the span.

Each distinct SQL text is parsed once (cached): its operation, tables, whether it reads, and the
sanitized text and summary. ``COPY`` blocks are wrapped by `CopyBlock`. See
`tiertrace._instrument.psycopg.instrumentor`.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from tiertrace._core import recorder as _access
from tiertrace._core.memo import remember
from tiertrace._core.sanitize.sql import (
    sanitize_sql,
    sql_fingerprint,
    sql_operation,
    sql_summary,
    sql_tables,
)

_NOT_ACCESS = frozenset(
    [
        "BEGIN",
        "START",
        "COMMIT",
        "END",
        "ROLLBACK",
        "ABORT",
        "SAVEPOINT",
        "RELEASE",
        "PREPARE",
        "DEALLOCATE",
        "SET",
        "SHOW",
        "RESET",
        "DISCARD",
        "LISTEN",
        "UNLISTEN",
        "NOTIFY",
        "LOAD",
        "CHECKPOINT",
        "CREATE",
        "ALTER",
        "DROP",
        "TRUNCATE",
        "COMMENT",
        "GRANT",
        "REVOKE",
        "VACUUM",
        "ANALYZE",
        "REINDEX",
        "CLUSTER",
        "LOCK",
        "DECLARE",
        "CLOSE",
        "MOVE",
        "DO",
        "UNKNOWN",
    ]
)
_READS = frozenset(("SELECT", "VALUES", "TABLE", "FETCH"))


class Statement(NamedTuple):
    op: str
    target: str
    tables: tuple[str, ...]
    is_read: bool
    text: str
    summary: str
    fingerprint: str  # the advisor's pattern: literals and parameters as ?
    span_text: dict[str, str]  # span attributes at start, with the sanitized text
    span_summary: dict[str, str]  # the same without it (capture_query_text=False)


_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
_CACHED_CHARS = 8192  # longer statements are parsed each time rather than kept in the cache


_STATEMENTS: dict[str, Statement | None] = {}  # None cached too: not an access
_UNSEEN = Statement("", "", (), False, "", "", "", {}, {})  # what `statement` has not parsed


def statement(sql: str) -> Statement | None:
    """What tiertrace records for ``sql`` (None: not an access); cached by text."""
    found = _STATEMENTS.get(sql, _UNSEEN)
    if found is not _UNSEEN:
        return found
    if len(sql) > _CACHED_CHARS:
        return _parse(sql)
    return remember(_STATEMENTS, sql, _parse(sql))


def _parse(sql: str) -> Statement | None:
    op = sql_operation(sql)
    if op in _NOT_ACCESS:
        return None
    tables = sql_tables(sql)
    text = sanitize_sql(sql)
    names = tables + tuple(t.rsplit(".", 1)[-1] for t in tables if "." in t)
    is_read = op in _READS or _RETURNING.search(sql) is not None
    summary = sql_summary(sql)
    target = tables[0] if tables else ""
    return Statement(
        op,
        target,
        names,
        is_read,
        text,
        summary,
        sql_fingerprint(sql),
        {"db.query.summary": summary, "db.query.text": text},
        {"db.query.summary": summary},
    )


def query_text(query: Any, cursor: Any) -> str:
    if isinstance(query, str):
        return query
    if isinstance(query, bytes):
        return query.decode("utf-8", "replace")
    try:
        return str(query.as_string(cursor))
    except Exception:
        return str(query)


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error (``db.response.status_code``)."""
    return getattr(exc, "sqlstate", None)


class CopyBlock:
    """Wraps the context manager of ``cursor.copy()``: the block is one access (a write)."""

    def __init__(self, inner: Any, acc: _access.Access) -> None:
        self.inner = inner
        self.acc = acc

    def _exit(self, exc: BaseException | None, suppressed: bool) -> None:
        if exc is not None and not suppressed:
            _access.fail(self.acc, exc, sqlstate)
        else:
            _access.finish(self.acc, None)

    def __enter__(self) -> Any:
        try:
            return self.inner.__enter__()
        except BaseException as exc:
            _access.fail(self.acc, exc, sqlstate)
            raise

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            suppressed = self.inner.__exit__(*exc_info)
        except BaseException as exc:
            _access.fail(self.acc, exc, sqlstate)
            raise
        self._exit(exc_info[1], bool(suppressed))
        return suppressed

    async def __aenter__(self) -> Any:
        try:
            return await self.inner.__aenter__()
        except BaseException as exc:
            _access.fail(self.acc, exc, sqlstate)
            raise

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            suppressed = await self.inner.__aexit__(*exc_info)
        except BaseException as exc:
            _access.fail(self.acc, exc, sqlstate)
            raise
        self._exit(exc_info[1], bool(suppressed))
        return suppressed
