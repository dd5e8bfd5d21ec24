"""Patching client methods in place, and taking the patches out again in any order.

Each instrumentor replaces a few methods of the client classes with plain functions: a `Patch`
receives the client's own function and returns the function that calls it (a closure over it;
the instrumentors share theirs, ``wrappers`` in ``tiertrace._instrument.base``), which is
installed in the class dict with the original's name, qualname, doc and ``__wrapped__``. No
proxy object sits on the per-call path.

Another instrumentation (opentelemetry-instrumentation-redis, openllmetry's chromadb …) may wrap
the same method with a `wrapt` proxy, before or after tiertrace. tiertrace always places its
function *innermost*, directly around the client's own function: when the class attribute is
already a chain of proxies, tiertrace's function becomes the ``__wrapped__`` of the innermost
proxy.

* the other instrumentation's span is therefore always current when tiertrace runs, and tiertrace
  enriches it instead of opening a second span (see `tiertrace._core.recorder`);
* the other instrumentation's ``uninstrument()`` — which removes the outermost wrapper — removes
  its own wrapper and never tiertrace's, and tiertrace's `unpatch` finds its function (by
  identity) wherever it sits in the chain and puts the original back in its place.
  Uninstrumenting in any order restores the clients.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import wrapt

Patch = Callable[[Callable[..., Any]], Callable[..., Any]]
"""Makes the function that replaces a client method, from the client's own function."""
# wrapt >= 2 splits ObjectProxy; FunctionWrapper derives from the base class only
PROXY: Any = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)


class Patches:
    """The functions one instrumentor installed."""

    def __init__(self) -> None:
        # (class, attribute, tiertrace's function, the function it replaced)
        self.installed: list[tuple[type, str, Any, Any]] = []

    def patch(self, module: str, qualname: str, make: Patch) -> bool:
        """Replace ``module.qualname`` (``Class.method``) by ``make(original)``; False when it
        does not exist here."""
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
        patched = functools.update_wrapper(make(node), node)
        if parent is None:
            setattr(cls, attr, patched)
        else:
            _rewire(parent, node, patched)
        self.installed.append((cls, attr, patched, node))
        return True

    def unpatch(self) -> None:
        """Remove every function this object installed, wherever it sits in a wrapper chain."""
        for cls, attr, patched, original in reversed(self.installed):
            current = cls.__dict__.get(attr)
            if current is patched:
                setattr(cls, attr, original)
                continue
            parent: Any = current
            while isinstance(parent, PROXY):
                child = parent.__wrapped__
                if child is patched:
                    _rewire(parent, patched, original)
                    break
                parent = child
        self.installed.clear()


def _rewire(proxy: Any, old: Any, new: Any) -> None:
    """Make ``proxy`` wrap ``new`` in place of ``old``. Another instrumentation's unwrap can
    leave a wrapt *bound* wrapper in the class dict; it is rebuilt from the wrapper it was bound
    from (``_self_parent``) on every attribute access, so that one is rewired too."""
    proxy.__wrapped__ = new
    parent = getattr(proxy, "_self_parent", None)
    if parent is not None and getattr(parent, "__wrapped__", None) is old:
        parent.__wrapped__ = new
