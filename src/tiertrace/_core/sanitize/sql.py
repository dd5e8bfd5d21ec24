"""Sanitizing SQL: what tiertrace records about a statement, and what it never records.

These functions never raise (anything unreadable gives a fixed placeholder such as ``"?"``),
bound their output, and answer repeated inputs from a small cache (well under a microsecond).
They are re-exported by `tiertrace._core.sanitize.keys`, the guide to everything tiertrace records.

**Text and summary** (``db.query.text``, ``db.query.summary``)::

    >>> sanitize_sql("SELECT * FROM memories WHERE user_id = 42 AND tag IN ('a', 'b')")
    'SELECT * FROM memories WHERE user_id = ? AND tag IN (?)'
    >>> sql_summary("WITH r AS (SELECT * FROM public.memories) SELECT * FROM r JOIN facts")
    'SELECT public.memories facts'

String literals (``'...'``, ``E'...'``, ``$$...$$``, ``$tag$...$tag$``, ``B''``, ``X''``,
``U&''``) and numbers (with sign, decimals, exponent) become ``?``; ``IN`` lists of values or
placeholders become ``IN (?)``; comments go; whitespace is folded. Placeholders (``$1``, ``%s``,
``%(name)s``) carry no data and stay as written; identifiers, keywords, ``NULL``, ``TRUE``,
``FALSE`` are kept. The summary is the statement keyword (the main statement after ``WITH``;
``UNKNOWN`` when it is not a PostgreSQL command) plus up to five tables, sub-selects included
(CTE names and functions are not tables; unquoted names are lower-cased as PostgreSQL does).
Only the first 8 kB of a statement are read and outputs stop at `MAX_SQL_CHARS` with ``…``. The
database is never contacted: a psycopg ``sql.Composable`` is rendered without a connection
(psycopg >= 3.2), else recorded as ``?``.

**Patterns** (for the advisor): `sql_fingerprint` also turns placeholders into ``?`` and
canonicalizes case and spacing, so one query shape has one fingerprint.

**Never recorded here**: SQL literals and parameter values.
"""

from __future__ import annotations

import functools
import re

from tiertrace._core.sanitize.text import bound_text, read_text

MAX_SQL_CHARS = 2048
_SQL_SCAN = 8192
_Tok = tuple[str, str, bool]  # kind, text, whitespace before it
_Sql = tuple[str, str, str, tuple[str, ...]]  # sanitized, fingerprint, operation, tables
_UNPARSABLE: _Sql = ("?", "?", "UNKNOWN", ())

_SQL = re.compile(  # one PostgreSQL token; the most frequent kinds first
    r"""(?P<ws>\s+|--[^\n]*)|(?P<id>(?![eEbBxXnN]'|[uU]&['"])[^\W\d][\w$]*)
    |(?P<p>::|[,()\[\];]|\.(?!\d))|(?P<num>0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+
        |(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)
    |(?P<str>(?:[bBxXnN]|[uU]&)?'(?:[^']+|'')*'?)|(?P<es>[eE]'(?:[^'\\]+|\\.|'')*'?)
    |(?P<param>\$\d+|%\([^)]{0,64}\)[sbt]|%[sbt](?!\w))|(?P<dq>\$(?:[^\W\d]\w*)?\$)
    |(?P<qid>(?:[uU]&)?"(?:[^"]+|"")*"?)|(?P<bc>/\*)
    |(?P<op>(?:%%|[+*<>=~!@#^&|`?]|-(?!-)|/(?!\*)|%(?!\(|[sbt](?!\w)))+)|(?P<o>.)""",
    re.X | re.S,
)
_KIND = {"es": "str", "dq": "str", "o": "p"}
_OPX = re.compile(r"[~!@#%^&|`?]")
_VALUE = r"(?:\?|\$\d+|%\([^)]{0,64}\)[sbt]|%[sbt]|NULL|TRUE|FALSE)(?:\s*::\s*\w+)?"
_IN_LIST = re.compile(rf"\b(IN\s*)\(\s*{_VALUE}(?:\s*,\s*{_VALUE})*\s*\)", re.I)
_STATEMENTS = frozenset(
    str.split("""ABORT ALTER ANALYZE BEGIN CALL CHECKPOINT CLOSE CLUSTER COMMENT COMMIT COPY CREATE
    DEALLOCATE DECLARE DELETE DISCARD DO DROP END EXECUTE EXPLAIN FETCH GRANT IMPORT INSERT LISTEN
    LOAD LOCK MERGE MOVE NOTIFY PREPARE REASSIGN REFRESH REINDEX RELEASE RESET REVOKE ROLLBACK
    SAVEPOINT SECURITY SELECT SET SHOW START TABLE TRUNCATE UNLISTEN UPDATE VACUUM VALUES WITH""")
)
_KEYWORDS = _STATEMENTS | frozenset(
    str.split("""ALL AND ANY ARRAY AS ASC BETWEEN BOTH BY CASE CAST CHECK COLLATE COLUMN CONFLICT
    CONSTRAINT CROSS CURRENT_DATE CURRENT_TIMESTAMP CURRENT_USER DEFAULT DESC DISTINCT ELSE EXCEPT
    EXISTS FALSE FOR FOREIGN FROM FULL GROUP HAVING IF ILIKE IN INNER INTERSECT INTERVAL INTO IS
    ISNULL JOIN KEY LATERAL LEFT LIKE LIMIT LOCKED MATERIALIZED NATURAL NO NOT NOTHING NOTNULL
    NOWAIT NULL NULLS OF OFFSET ON ONLY OR ORDER OUTER OVER PARTITION PRIMARY RECURSIVE REFERENCES
    RETURNING RIGHT SIMILAR SKIP SOME THEN TO TRUE UNION UNIQUE USER USING WHEN WHERE WINDOW""")
)
_MAIN = frozenset(("SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE"))
_TABLE_AFTER = frozenset(("FROM", "JOIN", "INTO", "UPDATE", "COPY", "TABLE", "TRUNCATE"))
_SIGN_AFTER = _KEYWORDS - {"NULL", "TRUE", "FALSE"}  # keywords after which "-1" is a number
_DEPTH = {"(": 1, ")": -1}
_TIGHT_BEFORE, _TIGHT_AFTER = {",", ")", "]", ";", ".", "::"}, {"(", "[", ".", "::"}


def _skip_comment(text: str, i: int) -> int:
    depth = 0
    while True:  # PostgreSQL block comments nest
        a, b = text.find("/*", i), text.find("*/", i)
        if b < 0:
            return len(text)
        depth, i = (depth + 1, a + 2) if 0 <= a < b else (depth - 1, b + 2)
        if depth == 0:
            return i


def _lex(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos, n, space = 0, len(text), False
    while pos < n:
        m = _SQL.match(text, pos)
        kind, start, end = (m.lastgroup or "o", pos, m.end()) if m else ("o", pos, pos + 1)
        if kind in ("ws", "bc"):
            space, pos = True, (end if kind == "ws" else _skip_comment(text, pos))
            continue
        if kind == "dq":
            close = text.find(text[start:end], end)
            kind, end = "str", (n if close < 0 else close + end - start)
        elif kind == "op":  # like PostgreSQL: "=-" is "=" then a sign
            while end - start > 1 and text[end - 1] in "+-" and not _OPX.search(text, start, end):
                end -= 1
        kind = _KIND.get(kind, kind)
        last = toks[-1] if toks else ("", "", False)
        signed = kind == "num" and last[0] == "op" and last[1] in ("+", "-")
        if signed and _unary(toks[-2] if len(toks) > 1 else None):
            toks[-1] = ("num", last[1] + text[start:end], last[2])  # a signed number
        else:
            toks.append((kind, text[start:end], space))
        space, pos = False, end
    return toks


def _unary(before: _Tok | None) -> bool:
    """Whether a sign after this token is the sign of a number (not a subtraction)."""
    if before is None:
        return True
    kind, text, _ = before
    if kind == "id":
        return text.upper() in _SIGN_AFTER
    return kind in ("op", "p") and text not in (")", "]")


def _name(tok: _Tok) -> str:
    kind, text, _ = tok
    if kind != "qid":
        return text.lower()
    text = text[2:] if text[0] in "uU" else text
    return (text[1:-1] if len(text) > 1 and text.endswith('"') else text[1:]).replace('""', '"')


def _closers(toks: list[_Tok]) -> list[int]:
    """For each "(" the index of its ")" (len(toks) when unclosed)."""
    close, stack = [len(toks)] * len(toks), []
    for k, tok in enumerate(toks):
        if tok[1] == "(":
            stack.append(k)
        elif tok[1] == ")" and stack:
            close[stack.pop()] = k
    return close


def _ctes(toks: list[_Tok]) -> set[str]:
    names: set[str] = set()
    n, close = len(toks), _closers(toks)
    for i in (i for i, t in enumerate(toks) if t[0] == "id" and t[1].upper() == "WITH"):
        j = i + 2 if i + 1 < n and toks[i + 1][1].upper() == "RECURSIVE" else i + 1
        while j + 1 < n and toks[j][0] in ("id", "qid"):  # name [(columns)] AS [NOT] [MAT...] (
            k = close[j + 1] + 1 if toks[j + 1][1] == "(" else j + 1
            if k >= n or toks[k][1].upper() != "AS":
                break
            names.add(_name(toks[j]))
            k += 1
            while k < n and toks[k][1].upper() in ("NOT", "MATERIALIZED"):
                k += 1
            j = (close[k] + 1 if k < n and toks[k][1] == "(" else k) + 1
            if j > n or toks[j - 1][1] != ",":
                break
    return names


def _is_name(toks: list[_Tok], j: int) -> bool:
    return j < len(toks) and (
        toks[j][0] == "qid" or (toks[j][0] == "id" and toks[j][1].upper() not in _KEYWORDS)
    )


def _tables(toks: list[_Tok]) -> tuple[str, ...]:
    found: list[str] = []
    ctes, calls, n, i = _ctes(toks), [False], len(toks), 0
    while i < n and len(found) < 5:
        kind, text, _ = toks[i]
        word = text.upper() if kind == "id" else ""
        i += 1
        if text == "(":
            calls.append(i > 1 and _is_name(toks, i - 2))  # parentheses of a function call
        elif text == ")" and len(calls) > 1:
            calls.pop()
        elif word in _TABLE_AFTER and not calls[-1] and toks[i - 2][1].upper() != "DISTINCT":
            while True:
                while i < n and toks[i][1].upper() in ("ONLY", "LATERAL", "IF", "NOT", "EXISTS"):
                    i += 1
                if not _is_name(toks, i):
                    break
                parts = [_name(toks[i])]
                i += 1
                while i + 1 < n and toks[i][1] == "." and toks[i + 1][0] in ("id", "qid"):
                    parts.append(_name(toks[i + 1]))
                    i += 2
                if word in ("FROM", "JOIN") and i < n and toks[i][1] == "(":
                    break  # a set-returning function
                full = bound_text(".".join(parts), 128)
                if full not in {"", "stdin", "stdout", *found, *ctes}:  # COPY t FROM STDIN
                    found.append(full)
                i += 1 if i < n and toks[i][1].upper() == "AS" else 0
                i += 1 if _is_name(toks, i) else 0  # alias
                if word != "FROM" or i >= n or toks[i][1] != ",":
                    break
                i += 1
    return tuple(found[:5])


def _operation(toks: list[_Tok]) -> str:
    i = next((i for i, t in enumerate(toks) if t[1] != "("), len(toks))
    word = toks[i][1].upper() if i < len(toks) and toks[i][0] == "id" else ""
    if word != "WITH":
        return word if word in _STATEMENTS else "UNKNOWN"
    depth = 0
    for kind, text, _ in toks[i + 1 :]:  # the main statement follows the CTEs
        depth += _DEPTH.get(text, 0)
        if depth == 0 and kind == "id" and text.upper() in _MAIN:
            return text.upper()
    return "WITH"


def _fingerprint(toks: list[_Tok]) -> str:
    out: list[str] = []
    prev, prev_call = "(", False
    for kind, text, _ in toks:
        call = kind == "qid" or (kind == "id" and text.upper() not in _KEYWORDS)
        if kind in ("str", "num", "param"):
            text = "?"
        elif kind == "id":
            text = text.lower() if call else text.upper()
        if not (text in _TIGHT_BEFORE or prev in _TIGHT_AFTER or (text == "(" and prev_call)):
            out.append(" ")
        out.append(text)
        prev, prev_call = text, call
    return "".join(out)


def _in_list(m: re.Match[str]) -> str:
    return m.group(1) + "(?)"


@functools.lru_cache(maxsize=2048)
def _analyze(text: str, cut: bool) -> _Sql:
    toks = _lex(text)
    sanitized = "".join(
        (" " if space else "") + ("?" if kind in ("str", "num") else tok)
        for kind, tok, space in toks
    )
    return (
        bound_text(_IN_LIST.sub(_in_list, sanitized.strip()), MAX_SQL_CHARS, cut),
        bound_text(_IN_LIST.sub(_in_list, _fingerprint(toks).strip()), MAX_SQL_CHARS, cut),
        _operation(toks),
        _tables(toks),
    )


def _sql(sql: object) -> _Sql:
    try:
        if type(sql) is str and len(sql) <= _SQL_SCAN:
            return _analyze(sql, False)
        if not isinstance(sql, (str, bytes, bytearray, memoryview)):
            render = getattr(sql, "as_string", None)  # psycopg sql.Composable
            sql = sql if render is None else render(None)
            if render is not None and not isinstance(sql, str):
                return _UNPARSABLE
        return _analyze(*read_text(sql, _SQL_SCAN))
    except Exception:
        return _UNPARSABLE


def sanitize_sql(sql: object) -> str:
    """The statement with literals as ``?``, placeholders kept, comments and extra spaces gone."""
    return _sql(sql)[0]


def sql_fingerprint(sql: object) -> str:
    """The shape of a statement: literals and placeholders as ``?``, canonical case and spacing."""
    return _sql(sql)[1]


def sql_operation(sql: object) -> str:
    """``SELECT``, ``INSERT``, ``UPDATE``, ``DELETE``, ``COPY``, ``BEGIN`` ... or ``UNKNOWN``."""
    return _sql(sql)[2]


def sql_tables(sql: object) -> tuple[str, ...]:
    """Up to five tables a statement names, in order of first appearance."""
    return _sql(sql)[3]


def sql_summary(sql: object) -> str:
    """``db.query.summary``: the operation and the tables, ``SELECT memories``."""
    _, _, operation, tables = _sql(sql)
    return " ".join((operation, *tables))
