"""Redis (L1 by default): redis-py sync and asyncio clients, pools, pipelines, cluster.

Every command on an instrumented client is one access, except connection set-up and
housekeeping (PING, AUTH, HELLO, SELECT, CLIENT, INFO, CONFIG, COMMAND, WATCH, FLUSHDB, pub/sub
and the like). A pipeline or transaction is one access named ``PIPELINE`` or ``MULTI`` with
``db.operation.batch.size``; its hit is "every read in it hit", and it has no hit attribute
when it holds no read. An empty pipeline is not an access.

Hit rules (a read is a hit when it found data):

* GET, GETEX, GETDEL, HGET, LINDEX, JSON.GET, ZSCORE …: the reply is not None;
* HGETALL, SMEMBERS, LRANGE, ZRANGE, XRANGE, KEYS, SCAN … (collection reads): non-empty;
* EXISTS, SISMEMBER, HEXISTS: the reply is > 0;
* MGET, HMGET: every key found; the span carries ``tiertrace.keys.requested`` and
  ``tiertrace.keys.hit``.

Every other command (SET, DEL, EXPIRE, INCR …) is a write: timed and charged, no hit.

Keys never appear raw unless ``capture_keys="raw"``: ``user:42:profile`` becomes
``user:{id}:profile`` in the span name; values are never captured. A Redis error reply sets
``db.response.status_code`` to its prefix (``WRONGTYPE``, ``ERR`` …).

Example (after ``tiertrace.init()``)::

    import redis
    r = redis.Redis()
    r.get("user:42:profile")  # span "GET user:{id}:profile", tiertrace.hit=false on a miss
"""

from __future__ import annotations

import contextlib
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

from tiertrace._core import recorder as _access
from tiertrace._core.binding import ATTR, Switch, tier_of
from tiertrace._core.patching import Patches
from tiertrace._core.sanitize.keys import MAX_KEY_CHARS, capture_key, key_hash, key_template
from tiertrace._instrument import registry
from tiertrace._instrument.base import TierInstrumentor, wrappers
from tiertrace._instrument.redis import commands as cmds
from tiertrace._instrument.redis.commands import IGNORE, SCALAR, WRITE, Spec

_SWITCH = Switch()
_PATCHES = Patches()


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return key.decode("utf-8", "replace")
    return str(key)


def _begin(
    instance: Any, ctx: Context, op: str, key: Any, read: bool, batch: int | None = None
) -> _access.Access | None:
    text = key if key is None or type(key) is str else _key_text(key)
    bound = getattr(getattr(instance, "connection_pool", instance), ATTR, None)
    tier = tier_of(bound, _SWITCH, "redis", () if text is None else (text,))
    if tier is None:
        return None
    st = _access.STATE
    template = "" if text is None else key_template(text)
    mode = st.capture_keys
    target = template if mode == "template" or key is None else (capture_key(key, mode) or "")
    server = None if st.tracer is None else _server_attributes(instance)
    acc = _access.start(tier, op, target, SpanKind.CLIENT, server, None, ctx)
    # the exact key is held in memory only (advisor); a huge one is kept as its hash
    acc.key = text if text is None or len(text) <= MAX_KEY_CHARS else key_hash(key)
    acc.pattern = template
    acc.read = read
    if batch is not None and acc.recording:
        acc.span.set_attribute("db.operation.batch.size", batch)
    return acc


def _server_attributes(instance: Any) -> dict[str, Any]:
    """``db.namespace``, ``server.address`` and ``server.port``, built once per pool, one dict
    for all pools alike."""
    pool = getattr(instance, "connection_pool", None)
    attrs: dict[str, Any] | None = getattr(pool, "_tiertrace_server", None)
    if attrs is None:
        kwargs = getattr(pool, "connection_kwargs", None) or {}
        attrs = {"db.namespace": str(kwargs.get("db", 0))}
        if "host" in kwargs:
            attrs["server.address"] = kwargs["host"]
            attrs["server.port"] = kwargs.get("port", 6379)
        elif "path" in kwargs:
            attrs["server.address"] = kwargs["path"]
        attrs = _access.shared(attrs)
        with contextlib.suppress(AttributeError, TypeError):
            pool._tiertrace_server = attrs  # type: ignore[union-attr]
    return attrs


def _command_begin(instance: Any, args: tuple[Any, ...], _kwargs: Any) -> Any:
    ctx = _access.active() if args else None
    if ctx is None:
        return None
    found = cmds.spec(args[0])
    kind = found[1]
    if kind == IGNORE:
        return None
    # the first key: written out for the common case (the per-call path)
    key = (args[1] if len(args) > 1 else None) if found[2] else cmds.first_key(found, args)
    acc = _begin(instance, ctx, found[0], key, kind != WRITE)
    if acc is None:
        return None
    if found[3] and len(args) >= found[3]:  # not for a plain ``SET k v``
        acc.ttl_s = cmds.ttl(found[0], args)
    return acc, found


def _command_done(acc: _access.Access, found: Spec, _inst: Any, reply: Any) -> None:
    kind = found[1]  # a scalar read's hit written out (the per-call path)
    hit = reply is not None if kind == SCALAR else cmds.hit(acc, kind, found[0], reply)
    _access.finish(acc, hit)


def _pipeline_begin(instance: Any, _args: Any, _kwargs: Any) -> Any:
    stack = getattr(instance, "command_stack", None)
    if not stack:
        return None  # an empty pipeline is not an access
    ctx = _access.active()
    if ctx is None:
        return None
    specs: list[tuple[str, int]] = []
    key = ttl = None
    for entry in stack:
        args: tuple[Any, ...] = entry[0] if isinstance(entry, tuple) else entry.args
        found = cmds.spec(args[0]) if args else ("", IGNORE, False, 0)
        op, kind = found[0], found[1]
        specs.append((op, kind))
        if key is None and kind != IGNORE:
            key = cmds.first_key(found, args)
        if ttl is None and found[3] and len(args) >= found[3]:
            ttl = cmds.ttl(op, args)
    transaction = getattr(instance, "transaction", False) or getattr(
        instance, "explicit_transaction", False
    )
    read = any(kind not in (IGNORE, WRITE) for _op, kind in specs)
    acc = _begin(instance, ctx, "MULTI" if transaction else "PIPELINE", key, read, len(stack))
    if acc is None:
        return None
    acc.ttl_s = ttl
    return acc, specs


def _pipeline_done(acc: _access.Access, specs: Any, _inst: Any, replies: Any) -> None:
    hit: bool | None = None
    for (op, kind), reply in zip(specs, replies, strict=False):
        if kind in (IGNORE, WRITE):
            continue
        one = False if isinstance(reply, Exception) else cmds.hit(acc, kind, op, reply)
        hit = bool(one) if hit is None else hit and bool(one)
    acc.keys_requested = acc.keys_hit = None
    _access.finish(acc, hit)


_execute_command, _execute_command_async = wrappers(
    "redis", _command_begin, _command_done, cmds.status
)
_pipeline_execute, _pipeline_execute_async = wrappers(
    "redis", _pipeline_begin, _pipeline_done, cmds.status
)


_TARGETS = (
    ("redis.client", "Redis.execute_command", _execute_command),
    ("redis.client", "Pipeline.execute", _pipeline_execute),
    ("redis.asyncio.client", "Redis.execute_command", _execute_command_async),
    ("redis.asyncio.client", "Pipeline.execute", _pipeline_execute_async),
    ("redis.cluster", "RedisCluster.execute_command", _execute_command),
    ("redis.cluster", "ClusterPipeline.execute", _pipeline_execute),
    ("redis.asyncio.cluster", "RedisCluster.execute_command", _execute_command_async),
    ("redis.asyncio.cluster", "ClusterPipeline.execute", _pipeline_execute_async),
)


class RedisInstrumentor(TierInstrumentor):
    """Instruments redis-py (sync, asyncio, cluster) for tiertrace.

    `tiertrace.init` starts it for you (``instrument=`` chooses which clients); use it
    directly only to bind one client to a tier, or under ``opentelemetry-instrument``, which
    finds it through its ``opentelemetry_instrumentor`` entry point. It follows
    OpenTelemetry's ``BaseInstrumentor``: ``instrument()``, ``uninstrument()``.

    ``instrument_client(client, tier=None)`` binds a ``redis.Redis`` (and its pipelines, which
    share its connection pool) to ``tier`` (a tier name or a `Tier`) (None: resolve by the
    tiers' ``match``), whatever its keys, tables or collections; ``uninstrument_client(client)``
    removes the binding. An unknown tier name, or a tier of another system, raises
    `ConfigError`.

    Example:
        ```python
        tiertrace.init(tiers=[Tier("sessions", 1, "redis", 0.00005), ...])
        RedisInstrumentor().instrument_client(client, tier="sessions")
        ```
    """

    client = "redis"
    system = "redis"
    dependency = "redis >= 4.0"
    targets = _TARGETS
    switch = _SWITCH
    patches = _PATCHES

    def holder(self, client: Any) -> Any:
        return getattr(client, "connection_pool", client)


registry.register(RedisInstrumentor)
