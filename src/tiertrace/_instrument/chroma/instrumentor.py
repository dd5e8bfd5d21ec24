"""Chroma (L3 by default): chromadb >= 1.0, embedded, HTTP and async HTTP clients.

Every call of ``query``, ``get``, ``add``, ``upsert``, ``update`` and ``delete`` on a collection is
one access (``Collection`` serves ``PersistentClient``, ``EphemeralClient`` and ``HttpClient``;
``AsyncCollection`` serves ``AsyncHttpClient``). ``peek``, ``count``, ``modify``, the heartbeat
and creating, listing, getting or deleting collections are not accesses.

The span is named ``{operation} {collection}`` (``query memories``), kind INTERNAL for the
embedded clients and CLIENT for the HTTP ones (which also carry ``server.address`` and
``server.port``), and carries ``db.system.name=chroma``, ``db.operation.name``,
``db.collection.name``, ``db.namespace`` (``tenant|database``) and ``db.query.summary``
(operation, collection and the *keys* of the ``where`` filter: ``query memories{where:user}``).
``query`` adds ``db.vector.query.top_k`` (``n_results``); ``query`` and ``get`` add
``db.response.returned_rows`` (ids returned, summed over all query embeddings); ``add``,
``upsert``, ``update`` and ``delete`` add ``db.operation.batch.size`` (ids in the call).
Apart from the counts, these attributes depend only on the collection and the shape of the call
(operation, ``n_results``, ``where`` keys): they are worked out once per shape and collection and
given to the span when it starts: a call builds none of them.

Hit rules (reads only; writes have no ``tiertrace.hit``):

* ``get`` is a hit when it returned at least one id;
* ``query``: a query embedding is *found* when it returned at least one id and, if the tier has
  ``hit_distance``, its best (smallest) distance is ``<= hit_distance`` — the semantic-cache
  case. The access is a hit when every query embedding was found. With more than one query
  embedding the span also carries ``tiertrace.keys.requested`` (query embeddings) and
  ``tiertrace.keys.hit`` (found); a single-embedding query does not (it is not a multi-key
  read). When the call asked for no distances (``include`` without ``"distances"``) the
  threshold cannot be checked and "at least one id" decides.

Privacy: documents, embeddings, metadatas, query texts and ``where`` *values* never reach spans,
events or metric labels; ``where`` keys appear only in ``db.query.summary`` and in the
advisor's pattern.

Which collections count as which tier: after ``tiertrace.init()`` every collection, resolved by
its name against the Chroma tiers' ``match``. To instrument one collection or client only, or
to pin it to a tier, bind it::

    from tiertrace import ChromaInstrumentor
    ChromaInstrumentor().instrument_client(collection, tier="semantic")  # this collection
    ChromaInstrumentor().instrument_client(client, tier="semantic")      # all of its collections

A collection binding wins over its client's. Clients opened with the same settings (the same
path, the same host) share one connection in chromadb and therefore one binding.

With openllmetry's ``opentelemetry-instrumentation-chromadb`` active as well, tiertrace enriches
its ``chroma.*`` span (renamed, tiertrace attributes, hit and cost) instead of opening a second
one: one span per access. That span keeps openllmetry's own events, which include the documents
and metadatas returned by ``query``; if that matters, do not enable both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.trace import SpanKind

from tiertrace._core import recorder as _access
from tiertrace._core.binding import ATTR, TIERS, Switch, tier_of
from tiertrace._core.patching import Patches
from tiertrace._core.sanitize.keys import collection_pattern
from tiertrace._instrument import registry
from tiertrace._instrument.base import TierInstrumentor, wrappers

__all__ = ["ChromaInstrumentor", "collection_served", "query_found"]

_SWITCH = Switch()
_PATCHES = Patches()
_ENDPOINT = "_tiertrace_endpoint"  # cached (kind, server attributes) on the client's server API
_SHAPES = "_tiertrace_shapes"  # cached call shapes on a collection (see `_shape`)
_MAX_SHAPES = 64  # per collection; past it a shape is described afresh on every call
_OPS = ("query", "get", "add", "upsert", "update", "delete")
_READS = frozenset({"query", "get"})
# positions of the arguments tiertrace reads, after ``self`` (same for Collection/AsyncCollection)
_N_RESULTS_AT = 5  # query
_WHERE_AT = {"query": 6, "get": 1, "delete": 1}
_IDS_AT = 0  # add, upsert, update, delete


def query_found(result: Any, hit_distance: float | None) -> tuple[int, int, int]:
    """``(query embeddings, found, ids returned)`` of a ``query`` result (see the hit rules)."""
    ids = result.get("ids") or ()
    distances = result.get("distances") if hit_distance is not None else None
    found = rows = 0
    for i, row in enumerate(ids):
        n = len(row) if row is not None else 0
        rows += n
        if not n:
            continue
        if distances is not None and i < len(distances):
            best = distances[i]
            if best is not None and len(best) and min(best) > hit_distance:
                continue
        found += 1
    return len(ids), found, rows


def collection_served(collection: Any, result: Any) -> bool:
    """Whether a ``query`` ``result`` of ``collection`` is a hit by the Chroma tier's own rule.

    The tier is the collection's (or its client's) binding, else the Chroma tier whose
    ``match`` takes the collection's name; a hit is every query embedding found (within that
    tier's ``hit_distance``, if any), as for the access itself. A None result is a miss.
    """
    tier = _tier(collection, collection.name) or TIERS.maps["chroma"].resolve(collection.name)
    queries, found, _rows = query_found(result or {}, getattr(tier, "hit_distance", None))
    return queries > 0 and found == queries


def _tier(collection: Any, name: str) -> Any:
    bound = getattr(collection, ATTR, None)
    if bound is None:
        bound = getattr(getattr(collection, "_client", None), ATTR, None)
    return tier_of(bound, _SWITCH, "chroma", (name,))


def _endpoint(server: Any) -> tuple[SpanKind, dict[str, Any]]:
    """Span kind and server attributes of a collection's server API (cached on it)."""
    cached: tuple[SpanKind, dict[str, Any]] | None = getattr(server, _ENDPOINT, None)
    if cached is not None:
        return cached
    url = getattr(server, "_api_url", None)  # FastAPI / AsyncFastAPI; embedded has none
    found: tuple[SpanKind, dict[str, Any]] = (SpanKind.INTERNAL, {})
    if isinstance(url, str):
        parts = urlsplit(url)  # hostname and port only: never user info from the URL
        attrs: dict[str, Any] = {}
        if parts.hostname:
            attrs["server.address"] = parts.hostname
        attrs["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
        found = (SpanKind.CLIENT, attrs)
    with contextlib.suppress(AttributeError, TypeError):  # then it is computed each time
        setattr(server, _ENDPOINT, found)
    return found


def _count(ids: Any) -> int | None:
    if ids is None:
        return None
    if isinstance(ids, str):
        return 1
    try:
        return len(ids)
    except TypeError:
        return None


Shape = tuple[SpanKind, str, dict[str, Any]]
_NO_ATTRIBUTES: dict[str, Any] = {}


def _shape(instance: Any, name: str, op: str, top_k: int | None, where: Any) -> Shape:
    """Span kind, pattern and span attributes of one shape of call on ``instance``.

    A shape is the collection's name, the operation, ``n_results`` and the ``where`` keys; the
    attributes (``db.namespace``, ``db.query.summary``, server address and port,
    ``db.vector.query.top_k``) depend on nothing else, so they are built once per shape and
    kept on the collection (one dict for every collection object with the same values). Being
    the same dict object each time, they reach the span at its start through the recorder's
    cached attribute sets (`tiertrace._core.recorder.start`).
    """
    shapes: dict[tuple[Any, ...], Shape] | None = getattr(instance, _SHAPES, None)
    key: tuple[Any, ...] = (name, op, top_k)
    if where is None:
        if shapes is not None:
            found = shapes.get(key)
            if found is not None:
                return found
        pattern = collection_pattern(name, None)
    else:
        pattern = collection_pattern(name, where)
        key = (name, op, top_k, pattern)
        if shapes is not None:
            found = shapes.get(key)
            if found is not None:
                return found
    kind, server_attrs = _endpoint(getattr(instance, "_client", None))
    try:
        attrs: dict[str, Any] = {
            "db.namespace": f"{instance.tenant}|{instance.database}",
            "db.query.summary": f"{op} {pattern}",
            **server_attrs,
        }
        if top_k is not None:
            attrs["db.vector.query.top_k"] = top_k
    except Exception as fault:  # the access goes on without these attributes
        _access.report_fault("chroma", fault)
        return kind, pattern, _NO_ATTRIBUTES
    shape = (kind, pattern, _access.shared(attrs))
    if shapes is None:
        shapes = {}
        with contextlib.suppress(AttributeError, TypeError):  # then it is built each time
            setattr(instance, _SHAPES, shapes)
    elif len(shapes) >= _MAX_SHAPES:  # an unbounded variety of where keys: keep the first ones
        return shape
    shapes[key] = shape
    return shape


def _done_query(acc: _access.Access, _extra: Any, _instance: Any, result: Any) -> None:
    hit: bool | None = None
    try:
        requested, found, acc.rows = query_found(result, acc.tier.hit_distance)
        hit = requested > 0 and found == requested
        if requested > 1:
            acc.keys_requested, acc.keys_hit = requested, found
    except Exception as fault:  # an odd result: still one access, without a hit
        _access.report_fault("chroma", fault)
        hit = None
    _access.finish(acc, hit)


def _done_get(acc: _access.Access, _extra: Any, _instance: Any, result: Any) -> None:
    hit: bool | None = None
    try:
        acc.rows = len(result.get("ids") or ())
        hit = acc.rows > 0
    except Exception as fault:  # an odd result: still one access, without a hit
        _access.report_fault("chroma", fault)
    _access.finish(acc, hit)


def _done_write(acc: _access.Access, _extra: Any, _instance: Any, _result: Any) -> None:
    _access.finish(acc, None)


_DONE = {"query": _done_query, "get": _done_get}


def _status(exc: BaseException) -> str | None:
    """``db.response.status_code`` of a chromadb error: the HTTP status Chroma maps it to."""
    code = getattr(exc, "code", None)
    if callable(code) and type(exc).__module__ == "chromadb.errors":
        return str(code())
    return None


def _top_k(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int | None:
    """``n_results`` of a ``query`` call (chromadb's default 10 when not given)."""
    top_k = kwargs.get("n_results", args[_N_RESULTS_AT] if len(args) > _N_RESULTS_AT else None)
    if top_k is None:
        return 10
    return top_k if isinstance(top_k, int) and not isinstance(top_k, bool) else None


def _begin_of(op: str) -> Any:
    """The function that opens the access of one ``op`` call (None: not an access)."""
    read = op in _READS
    query = op == "query"
    where_at = _WHERE_AT.get(op)

    def begin(instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        ctx = _access.active()
        if ctx is None:
            return None
        name = instance.name
        tier = _tier(instance, name)
        if tier is None:
            return None
        top_k = _top_k(args, kwargs) if query else None
        where = None
        if where_at is not None:
            where = kwargs.get("where", args[where_at] if len(args) > where_at else None)
        shape = _shape(instance, name, op, top_k, where)
        acc = _access.start(tier, op, name, shape[0], shape[2], ctx=ctx)
        # nothing that can fail comes after this
        acc.pattern = shape[1]
        acc.read = read
        if not read and acc.recording:
            try:
                ids = kwargs["ids"] if "ids" in kwargs else args[_IDS_AT] if args else None
                batch = _count(ids)
                if batch is not None:
                    acc.span.set_attribute("db.operation.batch.size", batch)
            except Exception as fault:  # the access goes on without the batch size
                _access.report_fault("chroma", fault)
        return acc, None

    return begin


_WRAPPERS = {
    op: wrappers("chroma", _begin_of(op), _DONE.get(op, _done_write), _status) for op in _OPS
}


_TARGETS = tuple(
    (module, f"{cls}.{op}", _WRAPPERS[op][flavour])
    for module, cls, flavour in (
        ("chromadb.api.models.Collection", "Collection", 0),
        ("chromadb.api.models.AsyncCollection", "AsyncCollection", 1),
    )
    for op in _OPS
)


def _holder(target: Any) -> Any:
    """What a binding attaches to: a collection itself, or a client's shared server API."""
    server = getattr(target, "_server", None)  # chromadb Client / AsyncClient
    return target if server is None else server


class ChromaInstrumentor(TierInstrumentor):
    """Instruments chromadb collections (sync and async) for tiertrace.

    `tiertrace.init` starts it for you (``instrument=`` chooses which clients); use it
    directly only to bind one client to a tier, or under ``opentelemetry-instrument``, which
    finds it through its ``opentelemetry_instrumentor`` entry point. It follows
    OpenTelemetry's ``BaseInstrumentor``: ``instrument()``, ``uninstrument()``.

    ``instrument_client(client, tier=None)`` binds a collection, or every collection of one
    client to ``tier`` (a tier name or a `Tier`) (None: resolve by the tiers' ``match``),
    whatever its keys, tables or collections; ``uninstrument_client(client)`` removes the
    binding. An unknown tier name, or a tier of another system, raises `ConfigError`.

    Example:
        ```python
        tiertrace.init(tiers=[Tier("sessions", 1, "chroma", 0.00005), ...])
        ChromaInstrumentor().instrument_client(client, tier="sessions")
        ```
    """

    client = "chroma"
    system = "chroma"
    dependency = "chromadb >= 1.0"
    targets = _TARGETS
    switch = _SWITCH
    patches = _PATCHES

    def holder(self, client: Any) -> Any:
        return _holder(client)

    def before_patch(self) -> None:
        _register_embedding_function()


def _register_embedding_function() -> None:
    # collections created with tiertrace's HashingEmbeddingFunction re-open only when chromadb
    # knows its name; chromadb has already imported numpy and its registry at this point
    try:
        from tiertrace._instrument.chroma import embedding  # noqa: F401  (registers it)
    except Exception as fault:
        _access.report_fault("chroma", fault)


registry.register(ChromaInstrumentor)
