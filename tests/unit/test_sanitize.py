"""What tiertrace records about keys, SQL and queries: templates, sanitized SQL, patterns.

Concrete examples first, then properties that must hold for any input (nothing raises, outputs
stay bounded, no literal or digit leaks)."""

from __future__ import annotations

import hashlib
import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql as pgsql

from tiertrace._core.memo import LIMIT, remember
from tiertrace._core.sanitize.keys import (
    MAX_KEY_CHARS,
    capture_key,
    collection_pattern,
    key_hash,
    key_template,
    normalize_text,
    text_fingerprint,
)
from tiertrace._core.sanitize.sql import (
    MAX_SQL_CHARS,
    sanitize_sql,
    sql_fingerprint,
    sql_operation,
    sql_summary,
    sql_tables,
)

DIGITS = set(string.digits)


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class NeedsConnection:
    def as_string(self, context: object) -> str:
        raise TypeError("as_string() needs a connection")


# --- Redis keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "template"),
    [
        ("user:42:profile", "user:{id}:profile"),
        ("session:3f2a9c1e-8b4d-4c2a-9f1e-0123456789ab:data", "session:{id}:data"),
        ("SESSION:3F2A9C1E-8B4D-4C2A-9F1E-0123456789AB", "SESSION:{id}"),
        ("cache/8f14e45fceea167a5a36dedd4bea2543", "cache/{id}"),
        ("plain", "plain"),
        ("user:profile:settings", "user:profile:settings"),
        ("rate-limit-user-12345678", "rate-limit-user-{id}"),
        ("user_profile_12345678", "user_profile_{id}"),
        ("img.v2.json", "img.v{id}.json"),
        ("obj:deadbeef01", "obj:{id}"),
        ("tok:eyJhbGciOiJIUzI1NiJ9", "tok:{id}"),
        ("tok:dGhpcy1pcy1h_bG9uZy10b2tlbg==", "tok:{id}"),
        ("user:alice@example.com:cart", "user:{id}:cart"),
        ("a:abcdefghijklmnopqrstuvwxyz", "a:abcdefghijklmnopqrstuvwxyz"),
        ("t1", "t{id}"),
        ("", ""),
    ],
)
def test_key_template_replaces_ids_and_keeps_separators(key: str, template: str) -> None:
    assert key_template(key) == template


def test_key_template_accepts_bytes_ints_and_buffers_like_redis_py() -> None:
    assert key_template(b"user:42:profile") == "user:{id}:profile"
    assert key_template(bytearray(b"user:42")) == "user:{id}"
    assert key_template(memoryview(b"user:42")) == "user:{id}"
    assert key_template(123456) == "{id}"
    assert key_template(1.5) == "{id}.{id}"


def test_key_template_turns_binary_bytes_into_an_id_without_quotes_or_digits() -> None:
    assert key_template(b"emb:\xff\xfe\x00\x01\x80:v") == "emb:{id}:v"
    out = key_template(b"\x80\x81\x82123abc")
    assert not DIGITS & set(out)
    assert "b'" not in out and "\\x" not in out and "'" not in out


def test_key_template_cuts_long_keys_with_an_ellipsis() -> None:
    out = key_template("k:" + "x" * 1000)
    assert len(out) == MAX_KEY_CHARS and out.endswith("…") and out.startswith("k:xxx")


def test_key_template_never_leaves_half_an_id_at_the_cut() -> None:
    out = key_template("x" * (MAX_KEY_CHARS - 3) + ":1")
    assert out == "x" * (MAX_KEY_CHARS - 3) + ":…"


@pytest.mark.parametrize("key", ["user:" + "7" * 1_000_000, b"user:" + b"\xfe9" * 500_000])
def test_key_template_handles_megabyte_keys(key: str | bytes) -> None:
    out = key_template(key)
    assert isinstance(out, str) and len(out) <= MAX_KEY_CHARS
    assert out.startswith("user:{id}") and not DIGITS & set(out)


def test_key_templates_stay_right_and_bounded_past_the_cache_size() -> None:
    for i in range(LIMIT * 2 + 7):  # the cache empties twice on the way
        assert key_template(f"session:{i}:cart") == "session:{id}:cart"
    cache: dict[int, int] = {}
    assert [remember(cache, i, -i) for i in range(LIMIT + 1)][-1] == -LIMIT
    assert cache == {LIMIT: -LIMIT}  # emptied when full, then the new entry


def test_key_template_never_raises_on_unreadable_objects() -> None:
    assert key_template(Unprintable()) == "?"
    assert key_hash(Unprintable()) == "h:?"
    assert capture_key(Unprintable(), "raw") == "?"


def test_key_hash_is_a_stable_blake2b_of_the_key_bytes() -> None:
    expected = "h:" + hashlib.blake2b(b"user:42", digest_size=8).hexdigest()
    assert key_hash("user:42") == key_hash(b"user:42") == expected
    assert key_hash(bytearray(b"user:42")) == key_hash(memoryview(b"user:42")) == expected
    assert key_hash(42) == key_hash("42")  # redis-py sends ints as their digits
    assert key_hash("user:43") != expected
    assert re.fullmatch(r"h:[0-9a-f]{16}", key_hash("x" * 100_000))
    assert re.fullmatch(r"h:[0-9a-f]{16}", key_hash("\udc80 lone surrogate"))


def test_capture_key_follows_the_capture_mode() -> None:
    key = "user:42:profile"
    assert capture_key(key, "template") == "user:{id}:profile"
    assert capture_key(key, "hash") == key_hash(key)
    assert capture_key(key, "raw") == key
    assert capture_key(b"user:\xff42", "raw") == "user:\ufffd42"
    assert capture_key(key, "none") is None
    assert capture_key(key, "bogus") == "user:{id}:profile"  # unknown mode: the safe default
    raw = capture_key("k" * 5000, "raw")
    assert raw is not None and len(raw) == MAX_KEY_CHARS and raw.endswith("…")


# --- SQL ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "sanitized"),
    [
        ("SELECT * FROM t WHERE a = 42", "SELECT * FROM t WHERE a = ?"),
        ("select *   from t\n\twhere a='x'", "select * from t where a=?"),
        ("SELECT 'it''s a secret'", "SELECT ?"),
        ("SELECT E'it\\'s \\\\ secret', e'x'", "SELECT ?, ?"),
        ("SELECT $$a 'quoted' $secret; $$", "SELECT ?"),
        ("SELECT $fn$ body $$ inner $$ $fn$ AS f", "SELECT ? AS f"),
        ("SELECT B'0101', X'1F', U&'d\\0061t', N'abc'", "SELECT ?, ?, ?, ?"),
        (
            "SELECT -5, - 7, +3, 1.5, .5, 6., 1e10, 2.5E-3, 0x1F, 1_000",
            "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?",
        ),
        ("SELECT a - 1, a-1, f(-1), x*-2", "SELECT a - ?, a-?, f(?), x*?"),
        ("SELECT t1.col_2, t2.x3 FROM t1, t2", "SELECT t1.col_2, t2.x3 FROM t1, t2"),
        ("SELECT * FROM t WHERE a = $1 AND b = $2", "SELECT * FROM t WHERE a = $1 AND b = $2"),
        (
            "INSERT INTO t VALUES (%s, %(name)s, %b, %t)",
            "INSERT INTO t VALUES (%s, %(name)s, %b, %t)",
        ),
        ("SELECT a % 2, 'x%%' FROM t", "SELECT a % ?, ? FROM t"),
        (
            "SELECT * FROM t WHERE a IS NULL OR b = TRUE OR c = false",
            "SELECT * FROM t WHERE a IS NULL OR b = TRUE OR c = false",
        ),
        ("SELECT * FROM t WHERE id IN (1, 2, 3)", "SELECT * FROM t WHERE id IN (?)"),
        ("SELECT * FROM t WHERE id IN (%s, %s)", "SELECT * FROM t WHERE id IN (?)"),
        (
            "SELECT * FROM t WHERE id in ('a','b') AND x NOT IN ($1,$2,$3)",
            "SELECT * FROM t WHERE id in (?) AND x NOT IN (?)",
        ),
        ("SELECT * FROM t WHERE d IN ('2024-01-01'::date, NULL)", "SELECT * FROM t WHERE d IN (?)"),
        (
            "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE v = 9)",
            "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE v = ?)",
        ),
        (
            "SELECT 1 -- trailing 42\nFROM t /* block 'x' */ WHERE /* a /* nested */ b */ c = 2",
            "SELECT ? FROM t WHERE c = ?",
        ),
        (
            'SELECT "Weird ""Name""", "x1" FROM "My Table"',
            'SELECT "Weird ""Name""", "x1" FROM "My Table"',
        ),
        ("SELECT now() - INTERVAL '1 day', '{1,2}'::int[]", "SELECT now() - INTERVAL ?, ?::int[]"),
        ("SELECT * FROM t WHERE a = 'unterminated secret", "SELECT * FROM t WHERE a = ?"),
        ("  ", ""),
    ],
)
def test_sanitize_sql_replaces_literals_and_keeps_placeholders(sql: str, sanitized: str) -> None:
    assert sanitize_sql(sql) == sanitized


def test_sanitize_sql_accepts_bytes_and_psycopg_composables_without_a_database() -> None:
    assert sanitize_sql(b"SELECT * FROM t WHERE a = 'x'") == "SELECT * FROM t WHERE a = ?"
    query = pgsql.SQL("SELECT * FROM {} WHERE a = {} AND b = %s").format(
        pgsql.Identifier("my table"), pgsql.Literal("secret")
    )
    assert sanitize_sql(query) == 'SELECT * FROM "my table" WHERE a = ? AND b = %s'
    assert sql_tables(query) == ("my table",)
    assert sanitize_sql(NeedsConnection()) == "?"
    assert sql_operation(NeedsConnection()) == "UNKNOWN"
    assert sanitize_sql(Unprintable()) == "?"
    assert sql_summary(Unprintable()) == "UNKNOWN"
    assert sanitize_sql(None) == ""


def test_sanitize_sql_bounds_a_100_kb_statement() -> None:
    big = "SELECT * FROM t WHERE a IN (" + ", ".join(str(i) for i in range(20_000)) + ")"
    assert len(big) > 100_000
    out = sanitize_sql(big)
    assert len(out) <= MAX_SQL_CHARS and out.endswith("…") and not DIGITS & set(out)
    assert sql_operation(big) == "SELECT" and sql_tables(big) == ("t",)
    assert len(sql_fingerprint(big)) <= MAX_SQL_CHARS


@pytest.mark.parametrize(
    ("sql", "operation"),
    [
        ("SELECT 1", "SELECT"),
        ("  select * from t", "SELECT"),
        ("Insert into t values (1)", "INSERT"),
        ("UPDATE t SET a = 1", "UPDATE"),
        ("delete from t", "DELETE"),
        ("COPY t FROM STDIN", "COPY"),
        ("BEGIN", "BEGIN"),
        ("SET search_path = public", "SET"),
        ("SHOW server_version", "SHOW"),
        ("EXPLAIN ANALYZE SELECT 1", "EXPLAIN"),
        ("WITH r AS (SELECT * FROM m) SELECT * FROM r", "SELECT"),
        ("WITH r AS (SELECT 1) INSERT INTO t SELECT * FROM r", "INSERT"),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "SELECT"),
        (
            "WITH RECURSIVE n(i) AS (VALUES (1) UNION ALL SELECT i + 1 FROM n) SELECT i FROM n",
            "SELECT",
        ),
        ("WITH a AS MATERIALIZED (SELECT 1), b AS (SELECT 2) UPDATE t SET x = 1", "UPDATE"),
        ("((SELECT 1)) UNION (SELECT 2)", "SELECT"),
        ("/* hint */ -- note\n select 1", "SELECT"),
        ("", "UNKNOWN"),
        ("42", "UNKNOWN"),
        ("frobnicate the table", "UNKNOWN"),
    ],
)
def test_sql_operation_is_the_statement_keyword(sql: str, operation: str) -> None:
    assert sql_operation(sql) == operation


@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        ("SELECT * FROM memories WHERE id = 1", ("memories",)),
        (
            "SELECT * FROM public.memories m JOIN facts f ON f.m = m.id",
            ("public.memories", "facts"),
        ),
        ('SELECT * FROM "My Table" JOIN "s"."Odd ""q"""', ("My Table", 's.Odd "q"')),
        ("SELECT * FROM Memories, facts AS f, notes n", ("memories", "facts", "notes")),
        ("INSERT INTO t (a, b) SELECT a, b FROM u", ("t", "u")),
        ("UPDATE ONLY t SET a = 1 FROM u WHERE t.id = u.id", ("t", "u")),
        ("DELETE FROM t WHERE id IN (SELECT id FROM u)", ("t", "u")),
        ("COPY t (a, b) FROM STDIN", ("t",)),
        ("TABLE t", ("t",)),
        ("CREATE TABLE IF NOT EXISTS t (a int)", ("t",)),
        ("WITH r AS (SELECT * FROM m), s AS (SELECT * FROM r) SELECT * FROM s JOIN x", ("m", "x")),
        ("SELECT * FROM (SELECT * FROM (SELECT * FROM deep) a) b JOIN t ON true", ("deep", "t")),
        ("SELECT * FROM t LEFT JOIN LATERAL (SELECT * FROM u) l ON true", ("t", "u")),
        ("SELECT * FROM t JOIN t ON true JOIN u ON true", ("t", "u")),
        ("SELECT * FROM generate_series(1, 3) g JOIN t ON true", ("t",)),
        ("SELECT extract(year FROM ts), a IS DISTINCT FROM b FROM t", ("t",)),
        ("SELECT * FROM t FOR UPDATE SKIP LOCKED", ("t",)),
        ("INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = 2", ("t",)),
        (
            "SELECT * FROM a JOIN b ON 1=1 JOIN c ON 1=1 JOIN d ON 1=1 JOIN e ON 1=1 JOIN f",
            ("a", "b", "c", "d", "e"),
        ),
        ("SELECT 1", ()),
        ("", ()),
    ],
)
def test_sql_tables_lists_the_tables_a_statement_names(sql: str, tables: tuple[str, ...]) -> None:
    assert sql_tables(sql) == tables


def test_sql_summary_is_operation_and_tables() -> None:
    assert sql_summary("SELECT * FROM memories WHERE id = $1") == "SELECT memories"
    assert sql_summary("INSERT INTO public.memories VALUES (1)") == "INSERT public.memories"
    assert sql_summary("SELECT * FROM a JOIN b ON true") == "SELECT a b"
    assert sql_summary("BEGIN") == "BEGIN"
    assert sql_summary("SELECT 1") == "SELECT"
    assert sql_summary("") == "UNKNOWN"


def test_sql_fingerprint_is_the_same_for_the_same_query_shape() -> None:
    a = sql_fingerprint("SELECT * FROM Memories WHERE user_id = 42 AND tag IN ('a', 'b', 'c')")
    b = sql_fingerprint("select *\nfrom memories where user_id=$1 and tag in (%s)")
    assert a == b == "SELECT * FROM memories WHERE user_id = ? AND tag IN (?)"
    assert sql_fingerprint("SELECT count(*) FROM t") == "SELECT count(*) FROM t"
    assert sql_fingerprint("SELECT a FROM t") != sql_fingerprint("SELECT b FROM t")
    assert sql_fingerprint('SELECT "Mixed" FROM t') == 'SELECT "Mixed" FROM t'


# --- free-text queries and Chroma -------------------------------------------------------------


def test_text_fingerprint_matches_queries_that_differ_only_in_case_spacing_punctuation() -> None:
    a = text_fingerprint("What is the weather in Paris?")
    assert a == text_fingerprint("what is the   weather in paris")
    assert re.fullmatch(r"query:[0-9a-f]{12}", a)
    assert "paris" not in a.lower()
    assert text_fingerprint("What is the weather in Rome?") != a
    assert text_fingerprint("top 5 results", "search") == text_fingerprint(
        "Top 10 results!", "search"
    )
    assert text_fingerprint("x", "search").startswith("search:")
    assert text_fingerprint(b"what is the weather in paris") == a


def test_normalize_text_casefolds_drops_punctuation_and_masks_numbers() -> None:
    assert normalize_text("  What's the WEATHER,   in Paris?? ") == "whats the weather in paris"
    assert normalize_text("Order #12345 costs 3.50 EUR") == "order # costs # eur"
    assert normalize_text("snake_case-and/slashes") == "snake case and slashes"
    assert normalize_text("Straße") == "strasse"
    assert len(normalize_text("word " * 1000)) == 200
    assert normalize_text(None) == ""


def test_collection_pattern_keeps_where_keys_and_never_values() -> None:
    assert collection_pattern("docs") == "docs"
    assert collection_pattern("docs", {}) == "docs"
    where = {"user": "alice", "lang": {"$eq": "secret-lang"}}
    assert collection_pattern("docs", where) == "docs{where:lang,user}"
    nested = {"$and": [{"user": "bob"}, {"$or": [{"tag": {"$in": ["x"]}}, {"age": {"$gt": 30}}]}]}
    out = collection_pattern("docs", nested)
    assert out == "docs{where:age,tag,user}"
    assert not {"bob", "x", "30", "$"} & set(re.split(r"[{},:]", out))


def test_collection_pattern_survives_odd_where_clauses() -> None:
    cyclic: dict[str, object] = {"a": 1}
    cyclic["$and"] = [cyclic]
    assert collection_pattern("docs", cyclic) == "docs{where:a}"
    assert collection_pattern("docs", ["not", "a", "dict"]) == "docs"
    assert collection_pattern("docs", {1: "x"}) == "docs{where:1}"

    class Collection:
        name = "memories"

    assert collection_pattern(Collection(), {"k": 1}) == "memories{where:k}"  # type: ignore[arg-type]
    assert collection_pattern(Unprintable()) == "?"  # type: ignore[arg-type]


# --- properties -----------------------------------------------------------------------------

anything = st.one_of(
    st.text(),
    st.binary(),
    st.integers(),
    st.floats(),
    st.none(),
    st.booleans(),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.builds(memoryview, st.binary()),
    st.builds(bytearray, st.binary()),
)


@given(value=anything, mode=st.sampled_from(["template", "hash", "raw", "none", "x"]))
def test_no_function_raises_and_every_output_is_bounded(value: object, mode: str) -> None:
    assert len(key_template(value)) <= MAX_KEY_CHARS
    assert re.fullmatch(r"h:[0-9a-f]{16}", key_hash(value))
    captured = capture_key(value, mode)
    assert captured is None if mode == "none" else len(captured or "") <= MAX_KEY_CHARS
    assert len(sanitize_sql(value)) <= MAX_SQL_CHARS
    assert len(sql_fingerprint(value)) <= MAX_SQL_CHARS
    assert isinstance(sql_operation(value), str)
    assert len(sql_tables(value)) <= 5
    assert isinstance(sql_summary(value), str)
    assert len(normalize_text(value)) <= 200
    assert re.fullmatch(r"t:[0-9a-f]{12}", text_fingerprint(value, "t"))
    assert len(collection_pattern("c", value)) <= MAX_KEY_CHARS


@given(sql=st.text(max_size=3000))
def test_sql_functions_never_raise_on_arbitrary_text(sql: str) -> None:
    assert len(sanitize_sql(sql)) <= MAX_SQL_CHARS
    assert len(sql_fingerprint(sql)) <= MAX_SQL_CHARS
    operation = sql_operation(sql)
    assert operation == operation.upper() and " " not in operation
    assert sql_summary(sql).startswith(operation)
    assert all(isinstance(t, str) and 0 < len(t) <= 128 for t in sql_tables(sql))


@given(key=st.one_of(st.text(), st.binary()))
def test_key_template_never_lets_a_digit_through(key: str | bytes) -> None:
    out = key_template(key)
    assert not DIGITS & set(out)
    assert len(out) <= MAX_KEY_CHARS


@given(
    prefix=st.text(alphabet=string.ascii_letters, min_size=1, max_size=12),
    number=st.integers(min_value=0),
    sep=st.sampled_from([":", "/", ".", "-", "_", ""]),
)
def test_key_template_hides_the_number_in_prefix_plus_digits_keys(
    prefix: str, number: int, sep: str
) -> None:
    out = key_template(f"{prefix}{sep}{number}")
    assert not DIGITS & set(out)
    assert "{id}" in out


numbers = st.one_of(
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.decimals(allow_nan=False, allow_infinity=False).map(str).filter(lambda s: "E" not in s),
)


@given(secret=st.text(), number=numbers)
def test_sanitize_sql_never_lets_literals_through(secret: str, number: str) -> None:
    quoted = "'" + secret.replace("'", "''") + "'"
    escaped = "E'" + secret.replace("\\", "\\\\").replace("'", "\\'") + "'"
    tag = "$q$"
    dollar = f"{tag}{secret}{tag}" if tag not in secret and not secret.endswith("$q") else quoted
    for literal in (quoted, escaped, dollar):
        sql = f"SELECT * FROM t WHERE a = {literal} AND b = {number}"
        assert sanitize_sql(sql) == "SELECT * FROM t WHERE a = ? AND b = ?"
        assert sql_tables(sql) == ("t",)
    in_list = f"SELECT * FROM t WHERE a IN ({quoted}, {number}, {escaped})"
    assert sanitize_sql(in_list) == "SELECT * FROM t WHERE a IN (?)"


@given(
    first=st.tuples(st.text(), numbers),
    second=st.tuples(st.text(), numbers),
    spaces=st.sampled_from([" ", "  ", "\n", "\t "]),
)
def test_sql_fingerprint_is_stable_across_literal_values(
    first: tuple[str, str], second: tuple[str, str], spaces: str
) -> None:
    def query(secret: str, number: str, gap: str) -> str:
        text = "'" + secret.replace("'", "''") + "'"
        return f"select *{gap}from memories where a = {text} and b = {number} limit 10"

    fingerprint = sql_fingerprint(query(*first, " "))
    assert fingerprint == sql_fingerprint(query(*second, spaces))
    assert fingerprint == "SELECT * FROM memories WHERE a = ? AND b = ? LIMIT ?"


@settings(max_examples=50)
@given(text=st.text(max_size=200))
def test_text_fingerprint_ignores_case_and_spacing(text: str) -> None:
    shouted = text.translate(str.maketrans(string.ascii_lowercase, string.ascii_uppercase))
    assert text_fingerprint(text) == text_fingerprint("  " + shouted.replace(" ", " \t "))
