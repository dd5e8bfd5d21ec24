"""Redis commands: which are accesses, which are reads, and when a read is a hit.

See `tiertrace._instrument.redis.instrumentor` for the rules in words. Housekeeping commands
(connection set-up, server
administration, pub/sub, transactions' own MULTI/EXEC/WATCH, FLUSHDB …) are not accesses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from tiertrace._core.recorder import Access

IGNORE, SCALAR, COLLECTION, EXISTS, MULTIKEY, WRITE = range(6)

IGNORED = frozenset(
    """PING AUTH HELLO SELECT CLIENT INFO CONFIG COMMAND ECHO QUIT RESET READONLY READWRITE
    WATCH UNWATCH MULTI EXEC DISCARD CLUSTER SCRIPT FUNCTION MEMORY SLOWLOG LATENCY MONITOR
    DEBUG FLUSHDB FLUSHALL DBSIZE TIME LASTSAVE SAVE BGSAVE BGREWRITEAOF SHUTDOWN ROLE ACL
    SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE SSUBSCRIBE SUNSUBSCRIBE PUBSUB MODULE
    WAIT WAITAOF SWAPDB REPLICAOF SLAVEOF FAILOVER LOLWUT""".split()
)
KINDS = {
    **dict.fromkeys(
        """GET GETEX GETDEL HGET LINDEX JSON.GET ZSCORE ZRANK ZREVRANK LPOS HRANDFIELD
        SRANDMEMBER RANDOMKEY ZRANDMEMBER""".split(),
        SCALAR,
    ),
    **dict.fromkeys(
        """HGETALL SMEMBERS LRANGE ZRANGE ZRANGEBYSCORE ZREVRANGE ZREVRANGEBYSCORE ZRANGEBYLEX
        ZREVRANGEBYLEX XRANGE XREVRANGE XREAD XREADGROUP KEYS SCAN HSCAN SSCAN ZSCAN HKEYS
        HVALS SINTER SUNION SDIFF GETRANGE SORT FT.SEARCH""".split(),
        COLLECTION,
    ),
    **dict.fromkeys("EXISTS SISMEMBER HEXISTS".split(), EXISTS),
    **dict.fromkeys("MGET HMGET JSON.MGET".split(), MULTIKEY),
}
KEYLESS = frozenset("SCAN XREAD XREADGROUP RANDOMKEY".split())
SCANS = frozenset("SCAN HSCAN SSCAN ZSCAN".split())
# (operation, kind, whether its first key is its first argument, the fewest arguments, the
# command's name included, with which it sets a TTL: 0 when it never does)
Spec = tuple[str, int, bool, int]
_SPECS: dict[Any, Spec] = {}


def spec(name: Any) -> Spec:
    """What a command name is: one dict lookup for a name seen before (the per-call path)."""
    found = _SPECS.get(name)
    if found is None:
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        op = text.upper()
        kind = IGNORE if op.split(" ", 1)[0] in IGNORED else KINDS.get(op, WRITE)
        found = (op, kind, op not in KEYLESS and op not in _SCRIPTS, TTL_OPS.get(op, 0))
        if len(_SPECS) < 1024:
            _SPECS[name] = found
    return found


def hit(acc: Access, kind: int, op: str, reply: Any) -> bool | None:
    if kind == SCALAR:
        return reply is not None
    if kind == COLLECTION:
        if reply is None:
            return False
        if op in SCANS and isinstance(reply, (tuple, list)) and len(reply) == 2:
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


_SCRIPTS = frozenset("EVAL EVALSHA EVAL_RO EVALSHA_RO FCALL FCALL_RO".split())
_PIPELINE_ERROR = re.compile(r"caused error: ([A-Z]+)\b")


def first_key(found: Spec, args: tuple[Any, ...]) -> Any:
    """The first key a command (its `spec` and arguments) touches, or None (scripts: the first
    of their KEYS)."""
    op = found[0]
    if found[2]:
        return args[1] if len(args) > 1 else None
    if op in _SCRIPTS:  # EVAL script numkeys key [key ...] arg [arg ...]
        try:
            return args[3] if len(args) > 3 and int(args[2]) > 0 else None
        except (TypeError, ValueError):
            return None
    return None  # keyless


# the commands that may set a relative TTL, and with how many arguments at least (``SET k v
# EX s``, ``GETEX k EX s``, ``SETEX k s v``, ``EXPIRE k s`` …)
TTL_OPS = {"SET": 5, "GETEX": 4, "SETEX": 3, "PSETEX": 3, "EXPIRE": 3, "PEXPIRE": 3}
_TTL_UNIT = {"EX": 1.0, "PX": 0.001}


def ttl(op: str, args: tuple[Any, ...]) -> float | None:
    """The relative TTL (seconds) a command of `TTL_OPS` sets, or None.

    ``SET k v EX s`` / ``PX ms``, ``GETEX k EX s`` / ``PX ms``, ``SETEX k s v``, ``PSETEX k ms v``,
    ``EXPIRE k s``, ``PEXPIRE k ms``; absolute expiries (``EXAT``, ``PXAT``) are not relative TTLs.
    """
    try:
        if op in ("SETEX", "EXPIRE"):
            return float(args[2]) if len(args) > 2 else None
        if op in ("PSETEX", "PEXPIRE"):
            return float(args[2]) / 1000.0 if len(args) > 2 else None
        for i in range(2, len(args) - 1):
            word = args[i]
            if isinstance(word, (str, bytes)) and len(word) == 2:
                unit = _TTL_UNIT.get(
                    (word.decode("ascii", "replace") if isinstance(word, bytes) else word).upper()
                )
                if unit is not None:
                    return float(args[i + 1]) * unit
    except (TypeError, ValueError):
        return None
    return None


def status(exc: BaseException) -> str | None:
    """The Redis error prefix (``WRONGTYPE``, ``ERR`` …), also inside a pipeline's error."""
    text = str(exc)
    word = text.split(" ", 1)[0] if text else ""
    if word.isupper() and word.isalpha():
        return word
    found = _PIPELINE_ERROR.search(text)
    return found.group(1) if found else None
