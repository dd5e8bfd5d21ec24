"""What the Redis, psycopg and Chroma instrumentors share: the `BaseInstrumentor` protocol and
the plain function that replaces every instrumented client method (`wrappers`).

``instrument()`` patches the client classes (once) and covers every client;
``instrument_client(client, tier=...)`` binds one client (see `tiertrace._core.binding`) and works
without global instrumentation; ``uninstrument()`` removes the patches (see
`tiertrace._core.patching`).
The instrumentors are registered as ``opentelemetry_instrumentor`` entry points, so
``opentelemetry-instrument python app.py`` loads them: when they are started that way and the
application never calls ``tiertrace.init()``, they attach tiertrace to the providers the
OpenTelemetry distro configured (exporter ``none`` unless ``TIERTRACE_EXPORTER`` says otherwise);
a later ``tiertrace.init()`` replaces that automatic set-up.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, ClassVar

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from tiertrace._core import recorder as _access
from tiertrace._core.binding import MATCH, TIERS, Switch, bind, unbind
from tiertrace._core.patching import Patch, Patches
from tiertrace._instrument import registry


class TierInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Base of tiertrace's instrumentors; subclasses name their system, targets and holder."""

    client: ClassVar[str]  # the name ``init(instrument=[...])`` knows it by
    system: ClassVar[str]
    dependency: ClassVar[str]
    targets: ClassVar[tuple[tuple[str, str, Patch], ...]]
    switch: ClassVar[Switch]
    patches: ClassVar[Patches]

    def instrumentation_dependencies(self) -> Collection[str]:
        return (self.dependency,)

    def holder(self, client: Any) -> Any:
        """The object a binding attaches to (shared by a client's pipelines or cursors)."""
        return client

    def before_patch(self) -> None:
        """Hook run once before the classes are patched."""

    def before_unpatch(self) -> None:
        """Hook run before the patches are removed (close what is pending)."""
        self.flush_pending()

    @classmethod
    def flush_pending(cls) -> None:
        """Close the accesses this instrumentor holds open (none unless it says otherwise)."""

    def _instrument(self, **kwargs: Any) -> None:
        registry.attach()  # started by opentelemetry-instrument without init()
        self._patch()
        self.switch.all = True

    def _uninstrument(self, **kwargs: Any) -> None:
        self.switch.all = False
        self.before_unpatch()
        with self.switch.lock:
            self.patches.unpatch()
            self.switch.patched = False

    def reset(self) -> None:
        """Uninstrument whatever is patched, however it was started (used by shutdown)."""
        self._uninstrument()
        self._is_instrumented_by_opentelemetry = False

    def instrument_client(self, client: Any, tier: Any = None) -> None:
        """Bind ``client`` to ``tier`` (None: resolve by the tiers' ``match``)."""
        self._patch()
        bind(self.holder(client), MATCH if tier is None else TIERS.named(tier, self.system))

    def uninstrument_client(self, client: Any) -> None:
        """Remove the binding; under global instrumentation, exclude the client from it."""
        unbind(self.holder(client), exclude=self.switch.all)

    def _patch(self) -> None:
        with self.switch.lock:
            if not self.switch.patched:
                self.before_patch()
                for module, qualname, make in self.targets:
                    self.patches.patch(module, qualname, make)
                self.switch.patched = True


Begin = Callable[[Any, tuple[Any, ...], dict[str, Any]], "tuple[_access.Access, Any] | None"]
Done = Callable[[_access.Access, Any, Any, Any], None]


def wrappers(
    component: str, begin: Begin, done: Done, status: _access.StatusOf | None = None
) -> tuple[Patch, Patch]:
    """The sync and async `Patch` every instrumented client method shares.

    Each makes, from the client's own method ``original``, the plain function that calls it and
    is installed in its place (see `tiertrace._core.patching`). ``begin(instance, args,
    kwargs)`` opens the access (or returns None: not an access); ``done(acc, extra, instance,
    result)`` classifies the result and finishes it. A fault in either is counted and the
    user's call goes on; the user's own exception is re-raised as it is, after `fail` recorded
    it.
    """

    # the fault handling of `begin` and `done` is written out in both functions (no helper
    # call): this is the per-call path of every instrumented client method
    def sync(original: Callable[..., Any]) -> Callable[..., Any]:
        def method(instance: Any, /, *args: Any, **kwargs: Any) -> Any:
            try:
                started = begin(instance, args, kwargs)
            except Exception as fault:
                _access.report_fault(component, fault)
                started = None
            if started is None:
                return original(instance, *args, **kwargs)
            acc = started[0]
            try:
                result = original(instance, *args, **kwargs)
            except BaseException as exc:
                _access.fail(acc, exc, status)
                raise
            try:
                done(acc, started[1], instance, result)
            except Exception as fault:
                _done_fault(component, acc, fault)
            return result

        return method

    def asynchronous(original: Callable[..., Any]) -> Callable[..., Any]:
        async def method(instance: Any, /, *args: Any, **kwargs: Any) -> Any:
            try:
                started = begin(instance, args, kwargs)
            except Exception as fault:
                _access.report_fault(component, fault)
                started = None
            if started is None:
                return await original(instance, *args, **kwargs)
            acc = started[0]
            try:
                result = await original(instance, *args, **kwargs)
            except BaseException as exc:
                _access.fail(acc, exc, status)
                raise
            try:
                done(acc, started[1], instance, result)
            except Exception as fault:
                _done_fault(component, acc, fault)
            return result

        return method

    return sync, asynchronous


def _done_fault(component: str, acc: _access.Access, fault: Exception) -> None:
    """``done`` raised: count it, and close the access without a hit if it is still open."""
    _access.report_fault(component, fault)
    if not acc.closed:
        _access.finish(acc, None)
