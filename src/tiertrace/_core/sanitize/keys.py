"""Sanitizing: what tiertrace records about keys, SQL and queries, and what it never records.

These functions never raise (anything unreadable gives a fixed placeholder such as ``"?"``),
bound their output, and answer repeated inputs from a small cache (well under a microsecond).

**Redis keys** (``capture_keys``, default ``"template"``)::

    >>> key_template("user:42:profile"), key_template(b"cache/8f14e45fceea167a5a36dedd4bea2543")
    ('user:{id}:profile', 'cache/{id}')

A template keeps letters and separators (``:`` ``/`` ``.`` ``-`` ``_``) and turns into ``{id}``
every run of digits, UUIDs, hex runs (6+ hex characters with a digit), token-like runs (16+
characters of ``[A-Za-z0-9+/=_-]`` with a digit: base64, JWT parts, API tokens), e-mail
addresses and binary bytes (undecodable or control characters). No digit of a key survives.
Bytes are decoded as UTF-8, never shown as ``b'...'``; keys are cut at `MAX_KEY_CHARS` with
``…``. ``"hash"`` records ``h:`` plus a 16-hex-digit BLAKE2b hash of the key's bytes: stable,
good for following one key, but not secret (``user:42`` can be found by trying candidates).
``"raw"`` records the key itself (cut to `MAX_KEY_CHARS`); ``"none"`` records nothing.

**SQL** (``db.query.text``, ``db.query.summary``) is sanitized by `tiertrace._core.sanitize.sql`,
whose
functions are re-exported here: ``sanitize_sql``, ``sql_summary``, ``sql_operation``,
``sql_tables``, ``sql_fingerprint``. Literals and numbers become ``?``; placeholders,
identifiers and keywords stay::

    >>> sanitize_sql("SELECT * FROM memories WHERE user_id = 42")
    'SELECT * FROM memories WHERE user_id = ?'

**Patterns** (for the advisor): `sql_fingerprint` gives one fingerprint per query shape.
`text_fingerprint` gives ``query_type:`` plus a 12-hex-digit hash of the normalized text
(casefolded, punctuation dropped, numbers as ``#``): ``"What is the weather in Paris?"`` and
``"what is the   weather in paris"`` share it, and the text is not kept; `normalize_text`
shows that form in-process. `collection_pattern` gives a Chroma collection and its
where-clause *keys*: ``docs{where:lang,user}``.

**Never recorded here**: Redis values; digits, ids and tokens inside keys (unless ``"raw"``);
SQL literals and parameter values; Chroma documents, embeddings, metadata and where-clause
values; memory query texts.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping

from tiertrace._core.memo import remember
from tiertrace._core.sanitize.sql import (
    MAX_SQL_CHARS,
    sanitize_sql,
    sql_fingerprint,
    sql_operation,
    sql_summary,
    sql_tables,
)
from tiertrace._core.sanitize.text import ID_MARK, bound_text, read_text

__all__ = [
    "MAX_KEY_CHARS",
    "MAX_SQL_CHARS",
    "capture_key",
    "collection_pattern",
    "key_hash",
    "key_template",
    "normalize_text",
    "sanitize_sql",
    "sql_fingerprint",
    "sql_operation",
    "sql_summary",
    "sql_tables",
    "text_fingerprint",
]

MAX_KEY_CHARS = 256
_KEY_SCAN, _TEXT_SCAN, _HASH_CACHE = 1024, 4096, 4096

_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_BINARY = re.compile(r"[\x00-\x1f\x7f\ufffd]+")
_SUSPECT = re.compile(r"[\d\x00-\x1f\x7f\ufffd@]")  # keys without these are kept as they are
_RUN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z+/=_-]*[0-9][A-Za-z0-9+/=_-]*")  # with a digit
_PARTS = re.compile(r"([/_-])")
_HEX, _DIGIT = re.compile(r"[0-9a-fA-F]{6,}"), re.compile(r"[0-9]")
_TOKENISH = re.compile(r"[0-9+=]")
_DIGITS, _IDS = re.compile(r"\d+"), re.compile(r"(?:\{id\}){2,}")
_WORDS, _APOSTROPHES = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+"), re.compile(r"['’`]")


def _hex(m: re.Match[str]) -> str:
    return ID_MARK if _DIGIT.search(m.group()) else m.group()


def _run(m: re.Match[str]) -> str:
    run = m.group()
    if run.isdigit():
        return ID_MARK
    parts = _PARTS.split(run)
    if len(run) >= 16 and all(not w or _TOKENISH.search(w) for w in parts[::2]):
        return ID_MARK  # one token, separators included
    for i in range(0, len(parts), 2):
        w = parts[i]
        parts[i] = (
            ID_MARK
            if len(w) >= 16 and _DIGIT.search(w)
            else _DIGITS.sub(ID_MARK, _HEX.sub(_hex, w))
        )
    return "".join(parts)


def _template(s: str, cut: bool) -> str:
    if _SUSPECT.search(s):
        s = _BINARY.sub(ID_MARK, s)
        s = _UUID.sub(ID_MARK, s) if "-" in s else s
        s = _EMAIL.sub(ID_MARK, s) if "@" in s else s
        s = _RUN.sub(_run, s)
        s = s if s.isascii() else _DIGITS.sub(ID_MARK, s)  # digits of other scripts
        s = _IDS.sub(ID_MARK, s) if "}{" in s else s
    return bound_text(s, MAX_KEY_CHARS, cut)


# templates of str and bytes keys, read on the per-call path; longer keys and other types
# (read with `read_text`, cut) are kept apart
_TEMPLATES: dict[str, str] = {}
_cut_template = functools.lru_cache(maxsize=2048)(_template)


def key_template(key: object) -> str:
    """The template of a Redis key: ``user:42:profile`` -> ``user:{id}:profile``."""
    try:
        if type(key) is bytes and len(key) <= _KEY_SCAN:
            key = key.decode("utf-8", "replace")
        if type(key) is str and len(key) <= _KEY_SCAN:
            found = _TEMPLATES.get(key)
            return remember(_TEMPLATES, key, _template(key, False)) if found is None else found
        return _cut_template(*read_text(key, _KEY_SCAN))
    except Exception:
        return "?"


@functools.lru_cache(maxsize=2048)
def _hash(key: str | bytes) -> str:
    raw = key.encode("utf-8", "surrogatepass") if isinstance(key, str) else key
    return "h:" + hashlib.blake2b(raw, digest_size=8).hexdigest()


def key_hash(key: object) -> str:
    """``h:`` plus the BLAKE2b-64 hex digest of the key's bytes (as redis-py sends them)."""
    try:
        if isinstance(key, (str, bytes)) and type(key) in (str, bytes) and len(key) <= _HASH_CACHE:
            return _hash(key)
        if isinstance(key, (bytes, bytearray, memoryview)):
            return _hash.__wrapped__(bytes(key))
        number = isinstance(key, (int, float)) and not isinstance(key, bool)
        return _hash.__wrapped__(repr(key).encode() if number else str(key))
    except Exception:
        return "h:?"


def capture_key(key: object, mode: str) -> str | None:
    """A key as ``capture_keys`` asks: ``template``, ``hash``, ``raw`` or ``none`` (None)."""
    if mode == "none":
        return None
    if mode == "hash":
        return key_hash(key)
    if mode == "raw":
        try:
            raw, cut = read_text(key, MAX_KEY_CHARS)
            return bound_text(raw, MAX_KEY_CHARS, cut)
        except Exception:
            return "?"
    return key_template(key)  # unknown modes get the safe default


@functools.lru_cache(maxsize=2048)
def _normalize(s: str) -> str:
    words = _WORDS.findall(_APOSTROPHES.sub("", s.casefold()))
    return " ".join("#" if w[0].isdigit() else w for w in words)


@functools.lru_cache(maxsize=2048)
def _digest(s: str) -> str:
    return hashlib.blake2b(
        _normalize(s).encode("utf-8", "surrogatepass"), digest_size=6
    ).hexdigest()


def normalize_text(text: object) -> str:
    """The normalized form `text_fingerprint` hashes (for in-process display only)."""
    try:
        return bound_text(_normalize(read_text(text, _TEXT_SCAN)[0]), 200)
    except Exception:
        return ""


def text_fingerprint(text: object, query_type: str | None = None) -> str:
    """``{query_type or 'query'}:`` plus a hash of the normalized text; the text is not kept."""
    try:
        prefix = bound_text(read_text(query_type, 64)[0], 64) or "query"
    except Exception:
        prefix = "query"
    try:
        return f"{prefix}:{_digest(read_text(text, _TEXT_SCAN)[0])}"
    except Exception:
        return f"{prefix}:?"


def _where_keys(where: object, keys: set[str], depth: int) -> None:
    if depth > 8 or len(keys) >= 32 or not isinstance(where, Mapping):
        return
    for key, value in where.items():
        name = read_text(key, 64)[0]
        if not name.startswith("$"):
            keys.add(name)
        elif isinstance(value, (list, tuple)):  # $and / $or
            for item in value[:64]:
                _where_keys(item, keys, depth + 1)


def collection_pattern(collection: str, where: object = None) -> str:
    """``docs`` or ``docs{where:lang,user}``: the collection and its where-clause keys."""
    try:
        name = collection if isinstance(collection, str) else getattr(collection, "name", None)
        pattern = bound_text(read_text(name if isinstance(name, str) else collection, 128)[0], 128)
        keys: set[str] = set()
        _where_keys(where, keys, 0)
        if keys:
            pattern += "{where:" + ",".join(sorted(keys)) + "}"
        return bound_text(pattern, MAX_KEY_CHARS)
    except Exception:
        return "?"
