"""The instrumentors tiertrace knows, and the hooks the runtime reaches them through.

Each plugin (``redis/``, ``psycopg/``, ``chroma/``) registers its instrumentor class here when it
is imported. The runtime asks this registry to load a plugin by client name, to close what the
loaded plugins hold pending, and to uninstrument them all, so it never imports a plugin itself.

The one call that goes upwards, starting tiertrace when ``opentelemetry-instrument`` loads an
instrumentor before the application called ``tiertrace.init()``, goes through `set_attach`, a
hook the runtime installs.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tiertrace._instrument.base import TierInstrumentor

# client name -> (distribution that must be importable, plugin package)
PLUGINS: dict[str, tuple[str, str]] = {
    "redis": ("redis", "tiertrace._instrument.redis"),
    "psycopg": ("psycopg", "tiertrace._instrument.psycopg"),
    "chroma": ("chromadb", "tiertrace._instrument.chroma"),
}
_REGISTERED: dict[str, type[TierInstrumentor]] = {}
_ATTACH: list[Callable[[], None]] = []


def register(cls: type[TierInstrumentor]) -> type[TierInstrumentor]:
    """Record a plugin's instrumentor class under its client name (called at plugin import)."""
    _REGISTERED[cls.client] = cls
    return cls


def load(client: str) -> type[TierInstrumentor] | None:
    """The instrumentor of ``client``, importing its plugin; None when the library is absent."""
    if client not in _REGISTERED:
        dist, package = PLUGINS[client]
        if importlib.util.find_spec(dist) is None:
            return None
        importlib.import_module(package)
    return _REGISTERED[client]


def loaded() -> list[type[TierInstrumentor]]:
    """The instrumentor classes whose plugin has been imported, in registration order."""
    return list(_REGISTERED.values())


def flush_pending() -> None:
    """Close every access a loaded plugin holds open (psycopg server cursors, pipelines)."""
    for cls in loaded():
        cls.flush_pending()


def set_attach(hook: Callable[[], None] | None) -> None:
    """Install (or remove) what an instrumentor calls when started without ``init()``."""
    _ATTACH[:] = [] if hook is None else [hook]


def attach() -> None:
    """Called by an instrumentor's ``instrument()``: start tiertrace if nothing did yet."""
    for hook in _ATTACH:
        hook()
