"""Chroma (L3): what one access records, the hit rules, privacy, errors, binding and coexistence,
against a real embedded PersistentClient and a real ``chroma run`` server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from time import perf_counter
from typing import Any

import chromadb
import numpy as np
import pytest
from chromadb.api.models.AsyncCollection import AsyncCollection
from chromadb.api.models.Collection import Collection
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings
from chromadb.errors import InvalidArgumentError
from opentelemetry.instrumentation.chromadb import ChromaInstrumentor as Openllmetry
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import tiertrace
from tiertrace import ChromaInstrumentor, HashingEmbeddingFunction, Tier
from tiertrace._instrument.chroma import instrumentor as chroma_module


def settings() -> Settings:
    """Fresh each time: chromadb client factories write into the Settings they are given."""
    return Settings(anonymized_telemetry=False)


OPS = ("query", "get", "add", "upsert", "update", "delete")
ORIGINALS = {(cls, op): cls.__dict__[op] for cls in (Collection, AsyncCollection) for op in OPS}
SEMANTIC = [
    Tier("redis", 1, "redis", 0.0001),
    Tier("postgresql", 2, "postgresql", 0.001),
    Tier("semantic", 3, "chroma", 0.01, hit_distance=0.5),
]


def v(i: int, dim: int = 8) -> list[float]:
    """Unit vector e_i: squared L2 distance 0 to itself, 2 to every other e_j."""
    out = [0.0] * dim
    out[i] = 1.0
    return out


NEAR_0 = [1.0, 0.3] + [0.0] * 6  # squared distance 0.09 to e_0, far from the others


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _restore_patches() -> Iterator[None]:
    """Put chromadb back after each test, also after instrument_client() without init()."""
    yield
    chroma_module.ChromaInstrumentor().reset()


@pytest.fixture
def embedded(tmp_path: Any) -> Iterator[Any]:
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"), settings=settings())
    yield client
    SharedSystemClient.clear_system_cache()


@pytest.fixture
def http(chroma_server: Any) -> Iterator[Any]:
    client = chromadb.HttpClient(
        host=chroma_server.host, port=chroma_server.port, settings=settings()
    )
    made = {c.name for c in client.list_collections()}
    yield client
    for c in client.list_collections():
        if c.name not in made:
            client.delete_collection(c.name)


@pytest.fixture(params=["embedded", "http"])
def client(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


def _collection(client: Any, *vectors: tuple[str, list[float]], ef: Any = None) -> Any:
    """A fresh collection holding ``vectors`` (seeded without recording anything)."""
    with suppress_instrumentation():
        col = client.create_collection(_name(), embedding_function=ef)
        if vectors:
            col.add(ids=[i for i, _ in vectors], embeddings=[e for _, e in vectors])
    return col


def _by_name(spans: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for s in spans:
        out.setdefault(s.name, []).append(s)
    return out


def test_each_operation_is_one_access_with_its_counts_and_hit(
    make_telemetry: Any, client: Any, request: pytest.FixtureRequest
) -> None:
    col = _collection(client)
    t = make_telemetry()
    name = col.name
    col.add(ids=["a", "b"], embeddings=[v(0), v(1)], documents=["alpha", "beta"])
    col.upsert(ids=["c"], embeddings=[v(2)])
    col.update(ids=["a"], metadatas=[{"k": 1}])
    col.get(ids=["a"])
    col.get(ids=["zz"])
    col.query(query_embeddings=[v(0)], n_results=2)
    col.delete(ids=["b"])
    tiertrace.flush()

    spans = t.access_spans()
    assert [s.name for s in spans] == [
        f"{op} {name}" for op in ("add", "upsert", "update", "get", "get", "query", "delete")
    ]
    http = request.node.callspec.params["client"] == "http"
    for s in spans:
        a = s.attributes
        assert a["db.system.name"] == "chroma"
        assert a["tiertrace.tier"] == "chroma"
        assert a["tiertrace.tier.level"] == 3
        assert a["db.collection.name"] == name
        assert a["db.namespace"] == "default_tenant|default_database"
        assert a["db.query.summary"] == f"{a['db.operation.name']} {name}"
        assert s.kind == (SpanKind.CLIENT if http else SpanKind.INTERNAL)
        if http:
            assert a["server.address"] == "127.0.0.1"
            assert isinstance(a["server.port"], int) and a["server.port"] > 0
        else:
            assert "server.address" not in a and "server.port" not in a
        assert s.status.status_code == StatusCode.UNSET
    add, upsert, update, get_hit, get_miss, query, delete = spans
    assert [x.attributes.get("db.operation.batch.size") for x in spans] == [
        2, 1, 1, None, None, None, 1,
    ]  # fmt: skip
    for write in (add, upsert, update, delete):
        assert "tiertrace.hit" not in write.attributes
        assert "db.response.returned_rows" not in write.attributes
    assert get_hit.attributes["tiertrace.hit"] is True
    assert get_hit.attributes["db.response.returned_rows"] == 1
    assert get_miss.attributes["tiertrace.hit"] is False
    assert get_miss.attributes["db.response.returned_rows"] == 0
    assert query.attributes["tiertrace.hit"] is True
    assert query.attributes["db.vector.query.top_k"] == 2
    assert query.attributes["db.response.returned_rows"] == 2
    assert "tiertrace.keys.requested" not in query.attributes  # one query embedding

    for op, n in {"add": 1, "upsert": 1, "update": 1, "get": 2, "query": 1, "delete": 1}.items():
        assert t.access_count(db__operation__name=op) == n, op
    assert t.access_count() == 7
    assert t.access_count(tiertrace__hit=True) == 2
    assert t.access_count(tiertrace__hit=False) == 1


def test_query_on_an_empty_collection_is_a_miss(make_telemetry: Any, embedded: Any) -> None:
    col = _collection(embedded)
    t = make_telemetry()
    col.query(query_embeddings=[v(0)], n_results=3)
    (span,) = t.access_spans()
    assert span.attributes["tiertrace.hit"] is False
    assert span.attributes["db.response.returned_rows"] == 0
    assert span.status.status_code == StatusCode.UNSET


def test_each_call_is_described_by_its_own_shape(make_telemetry: Any, embedded: Any) -> None:
    """Repeated calls reuse what was worked out for their shape, never another shape's."""
    col = _collection(embedded, ("a", v(0)))
    t = make_telemetry()
    old = col.name
    col.query(query_embeddings=[v(0)], n_results=1)
    col.query(query_embeddings=[v(0)], n_results=1, where={"user": "u1"})
    col.query(query_embeddings=[v(0)], n_results=1, where={"$and": [{"lang": "en"}, {"x": 1}]})
    col.query(query_embeddings=[v(0)], n_results=2)
    col.query(query_embeddings=[v(0)], n_results=1)
    col.query([v(0)], None, None, None, None, 1, {"user": "u2"})  # positional where
    col.get(ids=["a"])
    new = _name()
    with suppress_instrumentation():
        col.modify(name=new)
    col.query(query_embeddings=[v(0)], n_results=1)
    col.get(ids=["a"], where={"user": "u3"})
    summaries = [
        (s.name, s.attributes["db.query.summary"], s.attributes.get("db.vector.query.top_k"))
        for s in t.access_spans()
    ]
    assert summaries == [
        (f"query {old}", f"query {old}", 1),
        (f"query {old}", f"query {old}{{where:user}}", 1),
        (f"query {old}", f"query {old}{{where:lang,x}}", 1),
        (f"query {old}", f"query {old}", 2),
        (f"query {old}", f"query {old}", 1),
        (f"query {old}", f"query {old}{{where:user}}", 1),
        (f"get {old}", f"get {old}", None),
        (f"query {new}", f"query {new}", 1),
        (f"get {new}", f"get {new}{{where:user}}", None),
    ]


def test_hit_distance_makes_a_far_best_match_a_miss(make_telemetry: Any, client: Any) -> None:
    col = _collection(client, ("a", v(0)), ("b", v(1)))
    t = make_telemetry(tiers=SEMANTIC)
    col.query(query_embeddings=[NEAR_0], n_results=1)  # best distance 0.09 <= 0.5
    col.query(query_embeddings=[v(3)], n_results=1)  # best distance 2.0 > 0.5, 1 id back
    col.query(query_embeddings=[v(3)], n_results=1, include=["documents"])  # no distances
    near, far, blind = t.access_spans()
    assert near.attributes["tiertrace.tier"] == "semantic"
    assert near.attributes["tiertrace.hit"] is True
    assert far.attributes["tiertrace.hit"] is False
    assert far.attributes["db.response.returned_rows"] == 1
    assert far.status.status_code == StatusCode.UNSET  # a miss is not an error
    assert blind.attributes["tiertrace.hit"] is True  # falls back to "at least one id"
    assert t.access_count(tiertrace__tier="semantic", tiertrace__hit=True) == 2
    assert t.access_count(tiertrace__tier="semantic", tiertrace__hit=False) == 1


def test_without_hit_distance_any_result_is_a_hit(make_telemetry: Any, embedded: Any) -> None:
    col = _collection(embedded, ("a", v(0)))
    t = make_telemetry()
    col.query(query_embeddings=[v(3)], n_results=1)
    (span,) = t.access_spans()
    assert span.attributes["tiertrace.hit"] is True


def test_several_query_embeddings_hit_only_when_every_one_is_found(
    make_telemetry: Any, client: Any
) -> None:
    col = _collection(client, ("a", v(0)), ("b", v(1)))
    t = make_telemetry(tiers=SEMANTIC)
    col.query(query_embeddings=[NEAR_0, v(1)], n_results=2)
    col.query(query_embeddings=[NEAR_0, v(4), v(1)], n_results=1)
    both, partial = t.access_spans()
    assert both.attributes["tiertrace.hit"] is True
    assert both.attributes["tiertrace.keys.requested"] == 2
    assert both.attributes["tiertrace.keys.hit"] == 2
    assert both.attributes["db.response.returned_rows"] == 4
    assert partial.attributes["tiertrace.hit"] is False
    assert partial.attributes["tiertrace.keys.requested"] == 3
    assert partial.attributes["tiertrace.keys.hit"] == 2
    assert partial.attributes["db.response.returned_rows"] == 3


async def test_async_http_client_accesses_cover_the_awaited_call(
    make_telemetry: Any, chroma_server: Any
) -> None:
    client = await chromadb.AsyncHttpClient(
        host=chroma_server.host, port=chroma_server.port, settings=settings()
    )
    col = await client.create_collection(_name(), embedding_function=None)
    t = make_telemetry()
    vectors = np.random.default_rng(7).random((3000, 64), dtype=np.float32)
    ids = [str(i) for i in range(len(vectors))]
    started = perf_counter()
    await col.add(ids=ids, embeddings=vectors)
    awaited = perf_counter() - started
    await col.upsert(ids=["0"], embeddings=[vectors[1]])
    await col.update(ids=["1"], embeddings=[vectors[0]])
    hit = await col.get(ids=["2", "3"])
    await col.get(ids=["nope"])
    found = await col.query(query_embeddings=[vectors[5], vectors[6]], n_results=3)
    await col.delete(ids=["4"])
    await col.peek()
    await col.count()
    with pytest.raises(InvalidArgumentError, match="dimension"):
        await col.query(query_embeddings=[[1.0, 2.0, 3.0]], n_results=1)
    await client.delete_collection(col.name)
    tiertrace.flush()

    assert len(hit["ids"]) == 2 and len(found["ids"]) == 2
    spans = t.access_spans()
    assert [s.attributes["db.operation.name"] for s in spans] == [
        "add", "upsert", "update", "get", "get", "query", "delete", "query",
    ]  # fmt: skip
    assert all(s.kind == SpanKind.CLIENT for s in spans)
    failed = spans.pop()
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes["error.type"] == "InvalidArgumentError"
    assert spans[0].attributes["db.operation.batch.size"] == 3000
    assert spans[0].attributes["server.port"] == chroma_server.port
    assert [s.attributes.get("tiertrace.hit") for s in spans] == [
        None, None, None, True, False, True, None,
    ]  # fmt: skip
    assert spans[5].attributes["tiertrace.keys.requested"] == 2
    assert spans[5].attributes["db.response.returned_rows"] == 6
    add_span_s = (spans[0].end_time - spans[0].start_time) / 1e9
    assert awaited > 0.01, "the add should take measurable time"
    assert add_span_s >= 0.5 * awaited, (add_span_s, awaited)
    (add_point,) = [
        p for a, p in t.points("tiertrace.access.duration") if a.get("db.operation.name") == "add"
    ]
    assert add_point.count == 1
    assert add_point.sum >= 0.5 * awaited
    assert t.access_count() == 8
    assert t.access_count(error__type="InvalidArgumentError") == 1


def _outcome(call: Callable[[], Any]) -> tuple[type[BaseException], str]:
    try:
        call()
    except Exception as exc:
        return type(exc), str(exc)
    raise AssertionError("the call was expected to fail")


def test_errors_reach_the_caller_unchanged_and_mark_the_span(
    make_telemetry: Any, client: Any
) -> None:
    col = _collection(client, ("a", v(0)))
    with suppress_instrumentation():
        gone = client.create_collection(_name(), embedding_function=None)
        client.delete_collection(gone.name)
    calls = [
        lambda: col.query(query_embeddings=[[1.0, 2.0, 3.0]], n_results=1),
        lambda: col.add(ids=["x"], embeddings=[[1.0, 2.0, 3.0]]),
        lambda: gone.get(),
    ]
    plain = [_outcome(c) for c in calls]  # without tiertrace
    t = make_telemetry()
    traced = [_outcome(c) for c in calls]
    assert traced == plain
    assert [c.__name__ for c, _ in traced] == [
        "InvalidArgumentError",
        "InvalidArgumentError",
        "NotFoundError",
    ]
    spans = t.access_spans()
    assert [s.attributes["db.operation.name"] for s in spans] == ["query", "add", "get"]
    for span, (cls, _msg) in zip(spans, traced, strict=True):
        assert span.status.status_code == StatusCode.ERROR
        assert span.attributes["error.type"] == cls.__qualname__
        assert "tiertrace.hit" not in span.attributes
        assert [e.name for e in span.events] == ["exception"]
    assert [s.attributes["db.response.status_code"] for s in spans] == ["400", "400", "404"]
    assert t.access_count(error__type="InvalidArgumentError") == 2
    assert t.access_count(error__type="NotFoundError") == 1


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, x in value.items():
            yield str(k)
            yield from _texts(x)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for x in value:
            yield from _texts(x)
    else:
        yield str(value)


def test_documents_metadatas_query_texts_and_where_values_never_leave_the_process(
    make_telemetry: Any, client: Any
) -> None:
    secret = "zq-SECRET-4711-vault"
    col = _collection(client, ef=HashingEmbeddingFunction(dim=32))
    t = make_telemetry()
    col.add(
        ids=["m1", "m2"],
        documents=[f"my password is {secret}", "nothing to see"],
        metadatas=[{"owner": secret, "note": f"about {secret}"}, {"owner": "bob"}],
    )
    col.upsert(ids=["m3"], documents=[secret], metadatas=[{"owner": secret}])
    col.update(ids=["m1"], documents=[f"{secret} again"], metadatas=[{"owner": secret}])
    col.query(
        query_texts=[f"what is {secret}"],
        n_results=2,
        where={"owner": secret},
        where_document={"$contains": secret},
    )
    col.get(where={"owner": secret}, where_document={"$contains": secret})
    with tiertrace.lookup(query_type="privacy"):
        col.query(query_texts=[secret], n_results=1, include=["documents", "metadatas"])
    col.delete(where={"owner": secret})
    tiertrace.flush()

    spans = t.spans()
    assert len(t.access_spans()) == 7
    seen: list[str] = []
    for s in spans:
        seen.append(s.name)
        seen.extend(_texts(dict(s.attributes or {})))
        seen.append(str(s.status.description))
        for e in s.events:
            seen.append(e.name)
            seen.extend(_texts(dict(e.attributes or {})))
    data = t.reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    seen.extend(_texts(dict(p.attributes or {})))
    for log in t.logs():
        record = getattr(log, "log_record", log)
        seen.extend(_texts(record.body))
        seen.extend(_texts(dict(record.attributes or {})))
    seen.extend(_texts(tiertrace.stats()))
    leaks = [x for x in seen if secret in x]
    assert leaks == []
    queries = [s for s in t.access_spans() if s.attributes["db.operation.name"] == "query"]
    assert queries[0].attributes["db.query.summary"] == f"query {col.name}{{where:owner}}"


def test_error_messages_that_quote_metadata_values_stay_off_spans(
    make_telemetry: Any, embedded: Any
) -> None:
    secret = "zq-SECRET-4711-vault"
    col = _collection(embedded)
    t = make_telemetry()
    with pytest.raises(ValueError, match=secret):  # chromadb quotes the value to the caller
        col.add(ids=["x"], embeddings=[v(0)], metadatas=[{"owner": {"nested": secret}}])
    (span,) = t.access_spans()
    assert span.status.status_code == StatusCode.ERROR
    seen = [str(span.status.description)]
    for e in span.events:
        seen.extend(_texts(dict(e.attributes or {})))
    assert [x for x in seen if secret in x] == []


def test_peek_count_modify_and_collection_management_are_not_accesses(
    make_telemetry: Any, client: Any
) -> None:
    t = make_telemetry()
    client.heartbeat()
    col = client.create_collection(_name(), embedding_function=None)
    col.peek()
    col.count()
    col.modify(metadata={"purpose": "test"})
    client.list_collections()
    client.count_collections()
    client.get_collection(col.name)
    client.get_or_create_collection(col.name)
    client.delete_collection(col.name)
    tiertrace.flush()
    assert t.access_spans() == []
    assert t.access_count() == 0


def test_suppressed_calls_record_nothing(make_telemetry: Any, embedded: Any) -> None:
    col = _collection(embedded, ("a", v(0)))
    t = make_telemetry()
    with suppress_instrumentation():
        col.get(ids=["a"])
        col.query(query_embeddings=[v(0)], n_results=1)
    assert t.access_spans() == []
    assert t.access_count() == 0


def test_uninstrument_restores_the_original_methods() -> None:
    tiertrace.init(exporter="none")
    try:
        for (cls, op), original in ORIGINALS.items():
            assert cls.__dict__[op] is not original, (cls.__name__, op)
    finally:
        tiertrace.shutdown()
    for (cls, op), original in ORIGINALS.items():
        assert cls.__dict__[op] is original, (cls.__name__, op)


@pytest.fixture
def openllmetry() -> Iterator[Any]:
    inst = Openllmetry()
    yield inst
    if inst.is_instrumented_by_opentelemetry:
        inst.uninstrument()


@pytest.mark.parametrize("order", ["tiertrace-first", "openllmetry-first"])
def test_uninstrument_in_any_order_restores_chromadb(openllmetry: Any, order: str) -> None:
    tiertrace.init(exporter="none")
    openllmetry.instrument()
    if order == "tiertrace-first":
        tiertrace.shutdown()
        openllmetry.uninstrument()
    else:
        openllmetry.uninstrument()
        tiertrace.shutdown()
    for (cls, op), original in ORIGINALS.items():
        assert cls.__dict__[op] is original, (cls.__name__, op)


@pytest.mark.parametrize("openllmetry_first", [True, False])
def test_openllmetry_and_tiertrace_give_one_span_per_access(
    make_telemetry: Any, openllmetry: Any, client: Any, openllmetry_first: bool
) -> None:
    col = _collection(client, ("a", v(0)))
    own = InMemorySpanExporter()  # openllmetry instrumented before init() gets its own provider
    if openllmetry_first:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(own))
        openllmetry.instrument(tracer_provider=provider)
        t = make_telemetry()
    else:
        t = make_telemetry()
        openllmetry.instrument(tracer_provider=t.handle.telemetry.tracer_provider)
    name = col.name
    col.add(ids=["b"], embeddings=[v(1)])
    col.get(ids=["a"])
    col.get(ids=["zz"])
    col.query(query_embeddings=[v(0)], n_results=1)
    col.peek()  # openllmetry's span only: not an access
    tiertrace.flush()

    exported = [
        s
        for s in [*own.get_finished_spans(), *t.spans()]
        if not s.name.startswith(("tiertrace.lookup", "lookup"))
    ]
    accesses = [s for s in exported if "tiertrace.tier" in (s.attributes or {})]
    assert [s.name for s in accesses] == [
        f"add {name}",
        f"get {name}",
        f"get {name}",
        f"query {name}",
    ]
    assert all(
        s.instrumentation_scope.name == "opentelemetry.instrumentation.chromadb" for s in accesses
    )  # enriched, not duplicated
    assert [s.attributes.get("tiertrace.hit") for s in accesses] == [None, True, False, True]
    assert sorted(s.name for s in exported if s not in accesses) == ["chroma.peek"]
    assert t.access_count() == 4


def test_instrument_client_binds_one_collection_without_global_instrumentation(
    make_telemetry: Any, embedded: Any
) -> None:
    bound = _collection(embedded, ("a", v(0)))
    other = _collection(embedded, ("a", v(0)))
    t = make_telemetry(tiers=SEMANTIC, instrument=["redis"])
    ChromaInstrumentor().instrument_client(bound, tier="semantic")
    bound.get(ids=["a"])
    other.get(ids=["a"])
    ChromaInstrumentor().uninstrument_client(bound)
    bound.get(ids=["a"])
    (span,) = t.access_spans()
    assert span.attributes["db.collection.name"] == bound.name
    assert span.attributes["tiertrace.tier"] == "semantic"


def test_instrument_client_binds_every_collection_of_a_client(
    make_telemetry: Any, embedded: Any
) -> None:
    first = _collection(embedded, ("a", v(0)))
    second = _collection(embedded, ("a", v(0)))
    t = make_telemetry(instrument=["redis"])
    ChromaInstrumentor().instrument_client(embedded)
    first.get(ids=["a"])
    embedded.get_collection(second.name).query(query_embeddings=[v(0)], n_results=1)
    assert sorted(s.attributes["db.collection.name"] for s in t.access_spans()) == sorted(
        [first.name, second.name]
    )


def test_uninstrument_client_excludes_a_collection_from_global_instrumentation(
    make_telemetry: Any, embedded: Any
) -> None:
    quiet = _collection(embedded, ("a", v(0)))
    loud = _collection(embedded, ("a", v(0)))
    t = make_telemetry()
    ChromaInstrumentor().uninstrument_client(quiet)
    quiet.get(ids=["a"])
    loud.get(ids=["a"])
    assert [s.attributes["db.collection.name"] for s in t.access_spans()] == [loud.name]


def test_collections_matching_no_chroma_tier_are_left_alone(
    make_telemetry: Any, embedded: Any
) -> None:
    with suppress_instrumentation():
        sem = embedded.create_collection(f"sem-{uuid.uuid4().hex[:8]}", embedding_function=None)
        sem.add(ids=["a"], embeddings=[v(0)])
    other = _collection(embedded, ("a", v(0)))
    tiers = [*SEMANTIC[:2], Tier("semantic", 3, "chroma", 0.01, match=["sem-*"])]
    t = make_telemetry(tiers=tiers)
    sem.get(ids=["a"])
    other.get(ids=["a"])
    (span,) = t.access_spans()
    assert span.attributes["db.collection.name"] == sem.name
    assert t.access_count() == 1


def _self_errors(t: Any) -> int:
    return int(sum(p.value for _a, p in t.points("tiertrace.self.errors")))


def test_an_internal_fault_never_breaks_the_call(
    make_telemetry: Any, embedded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    col = _collection(embedded, ("a", v(0)))
    t = make_telemetry()

    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("tiertrace bug")

    monkeypatch.setattr(chroma_module, "collection_pattern", broken)
    assert col.get(ids=["a"])["ids"] == ["a"]
    assert t.access_count() == 0  # the fault came before the access began: none half-open
    assert _self_errors(t) == 1
    monkeypatch.undo()

    monkeypatch.setattr(chroma_module, "_count", broken)
    col.add(ids=["b"], embeddings=[v(1)])
    (span,) = t.access_spans()  # a fault while describing it: still one access
    assert span.name == f"add {col.name}"
    assert "db.operation.batch.size" not in span.attributes
    assert _self_errors(t) == 2


def test_hashing_embedding_function_is_deterministic_normalized_and_lexical() -> None:
    ef = HashingEmbeddingFunction()
    a, b, c, again = ef(
        [
            "the user prefers dark mode",
            "the user likes dark mode",
            "weather forecast for paris tomorrow",
            "the user prefers dark mode",
        ]
    )
    assert a.dtype == np.float32 and a.shape == (384,)
    assert np.allclose(a, again)
    assert abs(float(np.linalg.norm(a)) - 1.0) < 1e-5
    assert float(a @ b) > 0.5 > float(a @ c)
    assert HashingEmbeddingFunction.build_from_config(ef.get_config()).dim == 384
    assert abs(float(np.linalg.norm(ef([""])[0])) - 1.0) < 1e-5


def test_a_collection_made_with_the_hashing_function_reopens_without_it(tmp_path: Any) -> None:
    path = str(tmp_path / "chroma")
    col = chromadb.PersistentClient(path=path, settings=settings()).create_collection(
        "memories", embedding_function=HashingEmbeddingFunction(dim=64)
    )
    col.add(ids=["m1", "m2"], documents=["the user prefers dark mode", "ship the invoice"])
    SharedSystemClient.clear_system_cache()
    again = chromadb.PersistentClient(path=path, settings=settings()).get_collection("memories")
    found = again.query(query_texts=["does the user like dark mode"], n_results=1)
    assert found["ids"] == [["m1"]]
    SharedSystemClient.clear_system_cache()
