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

from collections.abc import Collection, Sequence
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.trace import SpanKind

from . import _access
from ._binding import ATTR, EXCLUDED, MATCH, TIERS, Switch, bind, unbind
from ._patch import Patches
from ._sanitize import capture_key, key_template

IGNORE, SCALAR, COLLECTION, EXISTS, MULTIKEY, WRITE = range(6)

_IGNORED = frozenset(
    "PING AUTH HELLO SELECT CLIENT INFO CONFIG COMMAND ECHO QUIT RESET READONLY READWRITE "
    "WATCH UNWATCH MULTI EXEC DISCARD CLUSTER SCRIPT FUNCTION MEMORY SLOWLOG LATENCY MONITOR "
    "DEBUG FLUSHDB FLUSHALL DBSIZE TIME LASTSAVE SAVE BGSAVE BGREWRITEAOF SHUTDOWN ROLE ACL "
    "SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE SSUBSCRIBE SUNSUBSCRIBE PUBSUB MODULE "
    "WAIT WAITAOF SWAPDB REPLICAOF SLAVEOF FAILOVER LOLWUT".split()
)
_KINDS = {
    **dict.fromkeys(
        "GET GETEX GETDEL HGET LINDEX JSON.GET ZSCORE ZRANK ZREVRANK LPOS HRANDFIELD "
        "SRANDMEMBER RANDOMKEY ZRANDMEMBER".split(),
        SCALAR,
    ),
    **dict.fromkeys(
        "HGETALL SMEMBERS LRANGE ZRANGE ZRANGEBYSCORE ZREVRANGE ZREVRANGEBYSCORE ZRANGEBYLEX "
        "ZREVRANGEBYLEX XRANGE XREVRANGE XREAD XREADGROUP KEYS SCAN HSCAN SSCAN ZSCAN HKEYS "
        "HVALS SINTER SUNION SDIFF GETRANGE SORT FT.SEARCH".split(),
        COLLECTION,
    ),
    **dict.fromkeys("EXISTS SISMEMBER HEXISTS".split(), EXISTS),
    **dict.fromkeys("MGET HMGET JSON.MGET".split(), MULTIKEY),
}
_KEYLESS = frozenset("SCAN XREAD XREADGROUP RANDOMKEY".split())
_SCANS = frozenset("SCAN HSCAN SSCAN ZSCAN".split())
_SPECS: dict[Any, tuple[str, int]] = {}
_SWITCH = Switch()
_PATCHES = Patches()


def _spec(name: Any) -> tuple[str, int]:
    spec = _SPECS.get(name)
    if spec is None:
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        op = text.upper()
        kind = IGNORE if op.split(" ", 1)[0] in _IGNORED else _KINDS.get(op, WRITE)
        spec = (op, kind)
        if len(_SPECS) < 1024:
            _SPECS[name] = spec
    return spec


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return key.decode("utf-8", "replace")
    return str(key)


def _tier(instance: Any, key: str | None) -> Any:
    holder = getattr(instance, "connection_pool", instance)
    bound = getattr(holder, ATTR, None)
    if bound is not None and bound is not MATCH:
        return None if bound is EXCLUDED else bound
    if bound is None and not _SWITCH.all:
        return None
    return TIERS.maps["redis"].resolve(key)


def _begin(
    instance: Any, op: str, key: Any, read: bool, batch: int | None = None
) -> _access.Access | None:
    text = None if key is None else _key_text(key)
    tier = _tier(instance, text)
    if tier is None:
        return None
    template = key_template(text) if text is not None else ""
    mode = _access.STATE.capture_keys
    target = template if mode == "template" or text is None else (capture_key(text, mode) or "")
    acc = _access.start(tier, op, target, SpanKind.CLIENT, _PATCHES.inner_wrapped)
    acc.key = text
    acc.pattern = template
    acc.read = read
    if acc.recording:
        _span_details(acc, instance, batch)
    return acc


def _span_details(acc: _access.Access, instance: Any, batch: int | None) -> None:
    pool = getattr(instance, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None) or {}
    attrs: dict[str, Any] = {"db.namespace": str(kwargs.get("db", 0))}
    if "host" in kwargs:
        attrs["server.address"] = kwargs["host"]
        attrs["server.port"] = kwargs.get("port", 6379)
    elif "path" in kwargs:
        attrs["server.address"] = kwargs["path"]
    if batch is not None:
        attrs["db.operation.batch.size"] = batch
    acc.span.set_attributes(attrs)


def _hit(acc: _access.Access, kind: int, op: str, reply: Any) -> bool | None:
    if kind == SCALAR:
        return reply is not None
    if kind == COLLECTION:
        if reply is None:
            return False
        if op in _SCANS and isinstance(reply, (tuple, list)) and len(reply) == 2:
            reply = reply[1]
        try:
            return len(reply) > 0
        except TypeError:
            return True
    if kind == EXISTS:
        return bool(reply) and reply > 0
    if kind == MULTIKEY:
        if not isinstance(reply, Sequence):
            return reply is not None
        found = sum(1 for item in reply if item is not None)
        acc.keys_requested = len(reply)
        acc.keys_hit = found
        return found == len(reply)
    return None


def _status(exc: BaseException) -> str | None:
    text = str(exc)
    word = text.split(" ", 1)[0] if text else ""
    return word if word.isupper() and word.isalpha() else None


def _command(args: tuple[Any, ...]) -> tuple[str, int, Any] | None:
    if not args or not _access.active():
        return None
    op, kind = _spec(args[0])
    if kind == IGNORE:
        return None
    key = args[1] if len(args) > 1 and op not in _KEYLESS else None
    return op, kind, key


def _execute_command(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    acc = None
    try:
        cmd = _command(args)
        if cmd is not None:
            acc = _begin(instance, cmd[0], cmd[2], cmd[1] != WRITE)
    except Exception as fault:
        _access.report_fault("redis", fault)
    if acc is None:
        return wrapped(*args, **kwargs)
    try:
        reply = wrapped(*args, **kwargs)
    except BaseException as exc:
        _access.fail(acc, exc, _status(exc))
        raise
    _done(acc, cmd, reply)  # type: ignore[arg-type]
    return reply


async def _execute_command_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    acc = None
    try:
        cmd = _command(args)
        if cmd is not None:
            acc = _begin(instance, cmd[0], cmd[2], cmd[1] != WRITE)
    except Exception as fault:
        _access.report_fault("redis", fault)
    if acc is None:
        return await wrapped(*args, **kwargs)
    try:
        reply = await wrapped(*args, **kwargs)
    except BaseException as exc:
        _access.fail(acc, exc, _status(exc))
        raise
    _done(acc, cmd, reply)  # type: ignore[arg-type]
    return reply


def _done(acc: _access.Access, cmd: tuple[str, int, Any], reply: Any) -> None:
    try:
        hit = _hit(acc, cmd[1], cmd[0], reply)
    except Exception as fault:
        _access.report_fault("redis", fault)
        hit = None
    _access.finish(acc, hit)


def _pipeline_begin(instance: Any) -> tuple[_access.Access, list[tuple[str, int]]] | None:
    stack = getattr(instance, "command_stack", None)
    if not stack or not _access.active():
        return None
    specs: list[tuple[str, int]] = []
    key = None
    for entry in stack:
        args = entry[0] if isinstance(entry, tuple) else getattr(entry, "args", ())
        spec = _spec(args[0]) if args else ("", IGNORE)
        specs.append(spec)
        if key is None and len(args) > 1 and spec[1] != IGNORE and spec[0] not in _KEYLESS:
            key = args[1]
    transaction = getattr(instance, "transaction", False) or getattr(
        instance, "explicit_transaction", False
    )
    read = any(kind not in (IGNORE, WRITE) for _op, kind in specs)
    acc = _begin(instance, "MULTI" if transaction else "PIPELINE", key, read, len(stack))
    return None if acc is None else (acc, specs)


def _pipeline_done(acc: _access.Access, specs: list[tuple[str, int]], replies: Any) -> None:
    hit: bool | None = None
    try:
        for (op, kind), reply in zip(specs, replies):
            if kind in (IGNORE, WRITE):
                continue
            one = False if isinstance(reply, Exception) else _hit(acc, kind, op, reply)
            hit = bool(one) if hit is None else hit and bool(one)
        acc.keys_requested = acc.keys_hit = None
    except Exception as fault:
        _access.report_fault("redis", fault)
        hit = None
    _access.finish(acc, hit)


def _pipeline_execute(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    started = None
    try:
        started = _pipeline_begin(instance)
    except Exception as fault:
        _access.report_fault("redis", fault)
    if started is None:
        return wrapped(*args, **kwargs)
    try:
        replies = wrapped(*args, **kwargs)
    except BaseException as exc:
        _access.fail(started[0], exc, _status(exc))
        raise
    _pipeline_done(started[0], started[1], replies)
    return replies


async def _pipeline_execute_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    started = None
    try:
        started = _pipeline_begin(instance)
    except Exception as fault:
        _access.report_fault("redis", fault)
    if started is None:
        return await wrapped(*args, **kwargs)
    try:
        replies = await wrapped(*args, **kwargs)
    except BaseException as exc:
        _access.fail(started[0], exc, _status(exc))
        raise
    _pipeline_done(started[0], started[1], replies)
    return replies


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


class RedisInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments redis-py (sync, asyncio, cluster) for tiertrace.

    ``instrument()`` covers every client; ``instrument_client(client, tier=...)`` binds one
    client (and its pipelines) to a tier, and works without global instrumentation.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("redis >= 4.0",)

    def _instrument(self, **kwargs: Any) -> None:
        _ensure_patched()
        _SWITCH.all = True

    def _uninstrument(self, **kwargs: Any) -> None:
        _SWITCH.all = False
        _unpatch()

    def instrument_client(self, client: Any, tier: Any = None) -> None:
        """Bind ``client`` and its pipelines to ``tier`` (None: resolve by the tiers' match)."""
        _ensure_patched()
        tier = MATCH if tier is None else TIERS.named(tier, "redis")
        bind(getattr(client, "connection_pool", client), tier)

    def uninstrument_client(self, client: Any) -> None:
        """Remove the binding; under global instrumentation, exclude the client from it."""
        unbind(getattr(client, "connection_pool", client), exclude=_SWITCH.all)


def _ensure_patched() -> None:
    with _SWITCH.lock:
        if not _SWITCH.patched:
            for module, qualname, wrapper in _TARGETS:
                _PATCHES.patch(module, qualname, wrapper)
            _SWITCH.patched = True


def _unpatch() -> None:
    with _SWITCH.lock:
        _PATCHES.unpatch()
        _SWITCH.patched = False
