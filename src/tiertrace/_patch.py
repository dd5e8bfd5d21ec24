"""Patching client methods in place, and taking the patches out again in any order.

Each instrumentor wraps a few methods of the client classes with `wrapt`. Another
instrumentation (opentelemetry-instrumentation-redis, for one) may wrap the same method before
or after tiertrace; `unpatch` removes tiertrace's wrapper from wherever it sits in that chain and
leaves the others in place, so uninstrumenting in any order restores the clients.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import wrapt

Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]


class Patches:
    """The wrappers one instrumentor installed."""

    def __init__(self) -> None:
        self.installed: list[tuple[type, str, Any]] = []
        self.inner_wrapped = False  # another instrumentation wraps inside ours

    def patch(self, module: str, qualname: str, wrapper: Wrapper) -> bool:
        """Wrap ``module.qualname`` (``Class.method``); False when it does not exist here."""
        try:
            mod = importlib.import_module(module)
            cls_name, attr = qualname.rsplit(".", 1)
            cls = getattr(mod, cls_name)
        except (ImportError, AttributeError, ValueError):
            return False
        original = cls.__dict__.get(attr)
        if original is None:
            return False
        if isinstance(original, wrapt.ObjectProxy):
            self.inner_wrapped = True
        proxy = wrapt.FunctionWrapper(original, wrapper)
        setattr(cls, attr, proxy)
        self.installed.append((cls, attr, proxy))
        return True

    def unpatch(self) -> None:
        """Remove every wrapper this object installed, wherever it sits in a wrapper chain."""
        for cls, attr, proxy in reversed(self.installed):
            current = cls.__dict__.get(attr)
            if current is proxy:
                setattr(cls, attr, proxy.__wrapped__)
                continue
            parent = current
            while isinstance(parent, wrapt.ObjectProxy):
                child = parent.__wrapped__
                if child is proxy:
                    parent.__wrapped__ = proxy.__wrapped__
                    break
                parent = child
        self.installed.clear()
        self.inner_wrapped = False
