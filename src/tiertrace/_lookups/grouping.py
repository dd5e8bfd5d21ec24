"""Lookups: the tier accesses made to answer one query, grouped into one unit.

A lookup answers the questions single accesses cannot: which tier *served* the query
(``served_by``: the tier of the first read in the chain that hit, or ``none``), how long the
whole fall-through took, and what it cost.

Explicit lookups — every access inside belongs to the lookup; contextvars keep threads and
asyncio tasks apart, and a nested ``lookup`` joins the outer one::

    import tiertrace

    with tiertrace.lookup(query_type="profile", user_id="u-42", agent_id="planner"):
        value = r.get("user:42:profile")
        if value is None:
            value = conn.execute("SELECT body FROM profiles WHERE id = %s", (42,)).fetchone()
            r.set("user:42:profile", value[0], ex=300)   # a fill: part of the same lookup

    @tiertrace.lookup(query_type="recall")          # also for ``async def``
    async def recall(question: str) -> list[str]: ...

Implicit lookups (on by default; ``implicit_lookups=False`` turns them off) group the accesses of
code that does its own cache-aside and only called ``init()``. Per thread or asyncio task:

* a read at level 1 starts a lookup (closing any pending one); a level-1 hit ends it at once;
* after a miss the lookup stays pending and reads at deeper levels join it until one hits;
  after that hit only writes (fills) join;
* a read at the same or a shallower level than the previous read, or the window
  (``implicit_window_s``, default 1 s, counted from the start of the lookup's first access)
  passing, closes it;
* a read at a deeper level with nothing pending starts its own lookup (a bypass);
* writes join the pending lookup as fills and never start one.

A lookup keeps the first 64 accesses of its chain for its span links and event (a bulk write
after a miss can add thousands of fills); its cost and duration count every access.

Pending lookups are closed on the next access of their thread or task, when their asyncio task
finishes (nothing more can join it), on metric collection once their window has passed, by
`tiertrace.flush()` and at shutdown — none is lost. A service that runs each request in a task
of its own so keeps no finished task, and none of its accesses, until the next collection.

What follows an access outside explicit lookups once its span has ended — its metric points,
the advisor and the TTL what-if — is handled a little later, in batches. The grouping decision is
taken at once; the work it leads to joins a queue of at most 256 accesses, handled in order when
full, once its oldest access is a second old, before an access in an explicit lookup, before an
implicit lookup of several accesses is closed (at once), and before anything reads the figures
(`tiertrace.stats()`, `tiertrace.suggestions()`, every metric collection, `tiertrace.flush()`,
shutdown). Handled in a batch, the same work costs less than access by access: the code and the
tables it touches stay in the processor's caches. Nothing is lost, the advisor sees every access
in order, and no reader sees the queue. With an `tiertrace.on_access` listener or
``single_access_events=True``, or with implicit lookups off, each access is handled at once.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from time import perf_counter, time_ns
from types import TracebackType
from typing import Any, Protocol, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from tiertrace._core import recorder as _access
from tiertrace._core.recorder import Access

F = TypeVar("F", bound=Callable[..., Any])
MAX_CHAIN = 64  # accesses kept per lookup for its span links and event; the rest are counted
DEFER_MAX = 256  # accesses queued at most before they are handled
DEFER_S = 1.0  # the longest a queued one waits for the queue to fill (seconds)


class Lookup:
    """One lookup in progress or closed; the chain of its accesses in order."""

    __slots__ = (
        "accesses",
        "agent_id",
        "cost",
        "count",
        "explicit",
        "key",
        "last_read_level",
        "pattern",
        "query_type",
        "result_count",
        "served",
        "span",
        "start_ns",
        "t0",
        "t_end",
        "user_id",
    )

    def __init__(
        self,
        explicit: bool,
        query_type: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        first: Access | None = None,
    ) -> None:
        self.explicit = explicit
        self.query_type = query_type
        self.user_id = user_id
        self.agent_id = agent_id
        self.accesses: list[Access] = []  # the chain, first MAX_CHAIN accesses
        self.count = 0  # accesses in the lookup, also those past MAX_CHAIN
        self.cost = 0.0
        self.served: Access | None = None
        self.last_read_level = 0
        self.result_count: int | None = None
        self.pattern: str | None = None
        self.key: str | None = None
        self.span: Any = None
        now = perf_counter()
        self.start_ns = time_ns()
        if first is None:  # explicit: starts now
            self.t0 = self.t_end = now
        else:  # implicit: starts when its first access started
            self.t0 = first.t0
            self.start_ns -= int((now - first.t0) * 1e9)
            self.add(first)

    def add(self, acc: Access) -> None:
        if self.pattern is None:
            self.pattern, self.key = acc.pattern, acc.key
        self.count += 1
        self.cost += acc.cost
        if len(self.accesses) < MAX_CHAIN:
            self.accesses.append(acc)
        self.t_end = acc.t0 + acc.duration_s
        if acc.read:
            self.last_read_level = acc.level
            if acc.hit and self.served is None:
                self.served = acc


_CURRENT: ContextVar[Lookup | None] = ContextVar("tiertrace_lookup", default=None)


class Plain(Protocol):
    """Whether a lookup of one access needs nothing but its figures (no listener, no log)."""

    plain: bool


class Grouper:
    """Routes each finished access to its lookup and closes lookups (the access sink).

    A read that starts an implicit lookup is kept pending as the bare `Access` while it is
    alone: most such lookups (a lone PostgreSQL or Chroma read, an L1 miss nobody follows)
    never get a second access, and closing them then costs what closing an L1 hit costs
    (``single``). The `Lookup` is built only when a second access joins. Such a read reaches
    the advisor when its lookup closes, like the lookup itself.

    While ``emitter.plain``, what `on_access` decides for an access outside explicit lookups
    goes through the `deferred` queue (see the module docstring), the closing of a `Lookup`
    excepted; `drain` empties it. An access queued so is counted in its metric slot (``count``)
    when it is handled, after every observation before it.
    """

    def __init__(
        self,
        close: Callable[[Lookup], None],
        implicit: bool,
        window_s: float,
        observe: Callable[[Access], None],
        single: Callable[[Access], None],
        emitter: Plain,
        count: Callable[[Access], None],
    ) -> None:
        self.close = close
        # an implicit lookup of one access: the access and its lookup observed together
        self.single = single
        self.implicit = implicit
        self.window_s = window_s
        self.observe = observe
        # per thread or task: its pending lookup, or its first read while that is alone
        self.pending: dict[object, Lookup | Access] = {}
        self.watched: set[asyncio.Task[Any]] = set()  # tasks told to close theirs when done
        self.lock = threading.Lock()
        self.emitter = emitter
        self.count = count  # counts an access in its metric slot (`tiertrace._core.recorder`)
        # (what to do, the access) in order; appended and taken one at a time (both atomic), so
        # concurrent drains handle each exactly once
        self.deferred: deque[tuple[Callable[[Access], None], Access]] = deque()
        self.drain_by = 0.0  # when the oldest queued one is due (perf_counter, + DEFER_S)
        # bound once: queued with the accesses `on_access` queues
        self.routed, self.joined = self._routed, self._joined

    def drain(self) -> None:
        """Handle every queued access, oldest first (a fault is counted, never raised: an
        access queued is counted by the queue alone)."""
        take = self.deferred.popleft
        while True:
            try:
                handle, acc = take()
            except IndexError:
                return
            try:
                handle(acc)
            except Exception as fault:
                _access.report_fault("lookup", fault)

    def _routed(self, acc: Access) -> None:
        """A lookup of its own or a write nothing joined: handled, then counted in its slot."""
        try:
            (self.single if acc.read else self.observe)(acc)
        finally:  # counted after it was observed, like an access not queued
            self.count(acc)

    def _joined(self, acc: Access) -> None:
        """An access that joined a lookup: observed, then counted in its slot."""
        try:
            self.observe(acc)
        finally:
            self.count(acc)

    def _defer(self, handle: Callable[[Access], None], acc: Access, now: float) -> None:
        deferred = self.deferred
        if not deferred:
            self.drain_by = now + DEFER_S
        deferred.append((handle, acc))
        if len(deferred) >= DEFER_MAX or now > self.drain_by:
            self.drain()

    def _finish(self, entry: Lookup | Access) -> None:
        if isinstance(entry, Lookup):
            self.close(entry)
        else:
            self.single(entry)

    def on_access(self, acc: Access) -> bool:
        """Route a closed access; True when it was queued (then `drain` counts it)."""
        pending = self.pending
        read = acc.read
        plain = self.emitter.plain
        if self.implicit and _CURRENT.get() is None:
            if plain and (
                (  # an L1 hit that is a lookup of its own
                    read
                    and acc.hit
                    and acc.level == 1
                    and (not pending or _context_key() not in pending)
                )
                or not (read or pending)  # a write with nothing pending
            ):  # the most common cases: `_defer` written out (the per-access path)
                deferred = self.deferred
                if not deferred:
                    self.drain_by = acc.t0 + DEFER_S
                deferred.append((self.routed, acc))
                if len(deferred) >= DEFER_MAX or acc.t0 > self.drain_by:
                    self.drain()
                return True
            return self._implicit(acc, read, plain)
        if self.deferred:  # every access is handled after those before it
            self.drain()
        self.observe(acc)
        explicit = _CURRENT.get()
        if explicit is not None:
            explicit.add(acc)
        return False

    def _implicit(self, acc: Access, read: bool, plain: bool) -> bool:
        """Group an access into its context's implicit lookup (see the module docstring).

        The decision is taken now; what it leads to is queued in order (a `Lookup` closing is
        handled at once, after the queue), and handled at once unless ``plain``.
        """
        pending = self.pending
        key = _context_key()
        # an L1 hit here closes the lookup pending in its context; another read starts one
        starts = read and not (acc.hit and acc.level == 1)
        closing: Lookup | Access | None = None  # what this access closes (at most one)
        first: Access | None = None  # a lone first read that a second access now joins
        lk: Lookup | None = None
        self.lock.acquire()
        try:
            entry = pending.get(key)
            if entry is not None:
                if isinstance(entry, Lookup):
                    served, last_level = entry.served is not None, entry.last_read_level
                else:  # a lone read so far
                    served, last_level = entry.hit is True, entry.level
                if perf_counter() - entry.t0 > self.window_s or (
                    read and (served or acc.level <= last_level)
                ):
                    closing = pending.pop(key)
                elif isinstance(entry, Lookup):
                    lk = entry
                else:
                    first = entry
                    lk = pending[key] = Lookup(False, first=first)
            if lk is not None:
                lk.add(acc)
                if lk.served is not None and lk.served.level == 1:
                    closing = pending.pop(key)
            elif starts:
                pending[key] = acc
                if type(key) is not int and key not in self.watched:
                    self._watch(key)
        finally:
            self.lock.release()
        now = acc.t0
        if isinstance(closing, Lookup):
            self.drain()
            self.close(closing)
        elif closing is not None:  # a lone read
            self._defer(self.single, closing, now)
        if first is not None:  # counted when it started its lookup
            self._defer(self.observe, first, now)
        # then this access, counted after what it is observed with
        if lk is not None:
            self._defer(self.joined, acc, now)
        else:  # a read that now waits in its lookup, or a write or an L1 hit that closed one
            self._defer(self.count if starts else self.routed, acc, now)
        if not plain:  # a listener or a log record wants each lookup at once
            self.drain()
        return True

    def _watch(self, task: Any) -> None:
        # called with the lock held; ``task`` is the asyncio task of the pending lookup
        try:
            task.add_done_callback(self._task_done)
            self.watched.add(task)
        except Exception as fault:  # not a task after all: collection closes its lookup
            _access.report_fault("lookup", fault)

    def _task_done(self, task: Any) -> None:
        """Close the pending lookup of a task that finished: nothing more can join it."""
        with self.lock:
            self.watched.discard(task)
            lk = self.pending.pop(task, None)
        if lk is not None:
            self.drain()
            self._finish(lk)

    def flush(self, everything: bool = True) -> None:
        """Handle the queued accesses, then close pending lookups: all of them, or only those
        whose window has passed."""
        self.drain()
        oldest = perf_counter() - self.window_s
        with self.lock:
            keys = [k for k, lk in self.pending.items() if everything or lk.t0 < oldest]
            done = [self.pending.pop(k) for k in keys]
        for lk in done:
            self._finish(lk)


def _context_key() -> object:
    loop = asyncio._get_running_loop()
    if loop is not None:
        task = asyncio.current_task(loop)
        if task is not None:
            return task
    return threading.get_ident()


# -- explicit lookups ------------------------------------------------------------------------
CLOSE: list[Callable[[Lookup], None]] = []  # set by init(): closes and emits a lookup


class lookup:
    """Group the accesses made inside into one explicit lookup (context manager or decorator).

    Every access in the block (or the decorated call) belongs to the lookup, whatever tier it
    goes to; contextvars keep threads and asyncio tasks apart, and a nested ``lookup`` joins
    the outer one. The lookup span (``lookup {query_type}`` or ``tiertrace.lookup``) is the
    parent of the access spans. Works with ``with``, ``async with`` and on ``def`` and
    ``async def`` functions.

    Args:
        query_type: the kind of query, as ``tiertrace.query_type`` on the span and the
            ``tiertrace.lookup.duration`` label. Keep it to a handful of values (the first 50
            are kept, then ``_other``); never an id or a text.
        user_id: put on the lookup span as ``user.id`` (never a metric label).
        agent_id: put on the lookup span as ``gen_ai.agent.id`` (never a metric label).

    Example:
        ```python
        with tiertrace.lookup(query_type="profile", user_id="u-42"):
            value = r.get("user:42:profile")
            if value is None:
                value = db.execute("SELECT body FROM profiles WHERE id = %s", (42,)).fetchone()
                r.set("user:42:profile", value[0], ex=300)

        @tiertrace.lookup(query_type="recall")
        async def recall(question: str) -> list[str]: ...
        ```
    """

    def __init__(
        self, query_type: str | None = None, user_id: str | None = None, agent_id: str | None = None
    ) -> None:
        self.query_type = query_type
        self.user_id = user_id
        self.agent_id = agent_id
        self._stack: list[tuple[Lookup | None, object, object]] = []

    def __enter__(self) -> Lookup:
        outer = _CURRENT.get()
        if outer is not None:  # nested: join the outer lookup
            self._stack.append((None, None, None))
            return outer
        lk = Lookup(True, self.query_type, self.user_id, self.agent_id)
        ctx_token = None
        st = _access.STATE
        if st.enabled and st.tracer is not None:
            name = f"lookup {self.query_type}" if self.query_type else "tiertrace.lookup"
            lk.span = st.tracer.start_span(name, kind=SpanKind.INTERNAL)
            ctx_token = otel_context.attach(trace.set_span_in_context(lk.span))
        self._stack.append((lk, _CURRENT.set(lk), ctx_token))
        return lk

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lk, var_token, ctx_token = self._stack.pop()
        if lk is None:
            return
        _CURRENT.reset(var_token)  # type: ignore[arg-type]
        if ctx_token is not None:
            otel_context.detach(ctx_token)  # type: ignore[arg-type]
        lk.t_end = perf_counter()
        if CLOSE:
            try:
                CLOSE[0](lk)
            except Exception as fault:
                _access.report_fault("lookup", fault)

    async def __aenter__(self) -> Lookup:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        spec = (self.query_type, self.user_id, self.agent_id)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with lookup(*spec):
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with lookup(*spec):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]
