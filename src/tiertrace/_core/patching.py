"""Patching client methods in place, and taking the patches out again in any order.

Each instrumentor wraps a few methods of the client classes with `wrapt`. Another
instrumentation (opentelemetry-instrumentation-redis, openllmetry's chromadb …) may wrap the same
method before or after tiertrace. tiertrace always places its wrapper *innermost*, directly
around the client's own function:

* the other instrumentation's span is therefore always current when tiertrace runs, and tiertrace
  enriches it instead of opening a second span (see `tiertrace._core.recorder`);
* the other instrumentation's ``uninstrument()`` — which removes the outermost wrapper — removes
  its own wrapper and never tiertrace's, and tiertrace's `unpatch` removes its wrapper from
  wherever it sits in the chain. Uninstrumenting in any order restores the clients.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import wrapt

Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]
# wrapt >= 2 splits ObjectProxy; FunctionWrapper derives from the base class only
PROXY: Any = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)


class Patches:
    """The wrappers one instrumentor installed."""

    def __init__(self) -> None:
        self.installed: list[tuple[type, str, Any]] = []

    def patch(self, module: str, qualname: str, wrapper: Wrapper) -> bool:
        """Wrap ``module.qualname`` (``Class.method``); False when it does not exist here."""
        try:
            mod = importlib.import_module(module)
            cls_name, attr = qualname.rsplit(".", 1)
            cls = getattr(mod, cls_name)
        except (ImportError, AttributeError, ValueError):
            return False
        top = cls.__dict__.get(attr)
        if top is None:
            return False
        parent: Any = None
        node: Any = top
        while isinstance(node, PROXY):  # find the client's own function
            parent, node = node, node.__wrapped__
        proxy = wrapt.FunctionWrapper(node, wrapper)
        if parent is None:
            setattr(cls, attr, proxy)
        else:
            parent.__wrapped__ = proxy
        self.installed.append((cls, attr, proxy))
        return True

    def unpatch(self) -> None:
        """Remove every wrapper this object installed, wherever it sits in a wrapper chain."""
        for cls, attr, proxy in reversed(self.installed):
            current = cls.__dict__.get(attr)
            if _ours(current, proxy):
                setattr(cls, attr, proxy.__wrapped__)
                continue
            parent: Any = current
            while isinstance(parent, PROXY):
                child = parent.__wrapped__
                if _ours(child, proxy):
                    parent.__wrapped__ = proxy.__wrapped__
                    break
                parent = child
        self.installed.clear()


def _ours(node: Any, proxy: Any) -> bool:
    # another instrumentation's unwrap may leave our wrapper bound to the class
    # (getattr on the class binds it): that bound wrapper's parent is our proxy
    return node is proxy or getattr(node, "_self_parent", None) is proxy
