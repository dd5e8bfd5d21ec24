"""`Patches`: a plain function in the class dict, innermost in a chain of `wrapt` proxies, and
every order of taking the patches out restores the class."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import wrapt
from opentelemetry.instrumentation.utils import unwrap

from tiertrace._core.patching import PROXY, Patches

MODULE = "tiertrace_patching_target"


class Client:
    def get(self, key: str) -> str:
        """The client's own doc."""
        return f"value of {key}"

    async def aget(self, key: str) -> str:
        return f"async value of {key}"


ORIGINAL = {name: Client.__dict__[name] for name in ("get", "aget")}


@pytest.fixture(autouse=True)
def _module() -> Iterator[None]:
    module = types.ModuleType(MODULE)
    module.Client = Client  # type: ignore[attr-defined]
    sys.modules[MODULE] = module
    yield
    del sys.modules[MODULE]
    _restore()


def _restore() -> None:
    for name, original in ORIGINAL.items():
        setattr(Client, name, original)


def _tagging(tag: str, calls: list[str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(original):

            async def amethod(instance: Any, /, *args: Any, **kwargs: Any) -> Any:
                calls.append(tag)
                return await original(instance, *args, **kwargs)

            return amethod

        def method(instance: Any, /, *args: Any, **kwargs: Any) -> Any:
            calls.append(tag)
            return original(instance, *args, **kwargs)

        return method

    return make


def _other(calls: list[str]) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        calls.append("other")
        return wrapped(*args, **kwargs)

    return wrapper


def test_the_patch_is_a_plain_function_with_the_originals_metadata() -> None:
    calls: list[str] = []
    patches = Patches()
    assert patches.patch(MODULE, "Client.get", _tagging("tiertrace", calls))
    assert patches.patch(MODULE, "Client.aget", _tagging("tiertrace", calls))
    assert not patches.patch(MODULE, "Client.missing", _tagging("tiertrace", calls))
    assert not patches.patch("tiertrace_no_such_module", "Client.get", _tagging("x", calls))
    installed = Client.__dict__["get"]
    assert type(installed) is types.FunctionType and not isinstance(installed, PROXY)
    assert installed.__name__ == "get" and installed.__qualname__ == "Client.get"
    assert installed.__doc__ == "The client's own doc."
    assert installed.__wrapped__ is ORIGINAL["get"]
    assert inspect.signature(installed) == inspect.signature(ORIGINAL["get"])
    assert inspect.iscoroutinefunction(Client.__dict__["aget"])
    client = Client()
    assert client.get("k") == "value of k"
    assert Client.get(client, key="k") == "value of k"
    assert asyncio.run(client.aget("k")) == "async value of k"
    assert calls == ["tiertrace"] * 3
    patches.unpatch()
    assert Client.__dict__["get"] is ORIGINAL["get"]
    assert Client.__dict__["aget"] is ORIGINAL["aget"]


def _build(units: list[str], calls: list[str]) -> Patches:
    """Instrument ``Client.get`` in the order of ``units`` (tiertrace's, or another's proxy)."""
    _restore()
    patches = Patches()
    for unit in units:
        if unit == "tiertrace":
            patches.patch(MODULE, "Client.get", _tagging("tiertrace", calls))
        else:
            wrapt.wrap_function_wrapper(MODULE, "Client.get", _other(calls))
    return patches


CHAINS = (
    ["tiertrace", "other"],
    ["other", "tiertrace"],
    ["tiertrace", "other", "other"],
    ["other", "tiertrace", "other"],
    ["other", "other", "tiertrace"],
)  # instrumenting order


@pytest.mark.parametrize("units", CHAINS)
def test_innermost_in_a_chain_and_any_unpatch_order_restores(units: list[str]) -> None:
    calls: list[str] = []
    _build(units, calls)
    assert Client().get("k") == "value of k"
    assert calls == ["other"] * (len(units) - 1) + ["tiertrace"]  # tiertrace's runs last
    for order in set(itertools.permutations(units)):
        patches = _build(units, calls)
        for unit in order:
            if unit == "tiertrace":
                patches.unpatch()
            else:  # as the other instrumentations uninstrument: the outermost proxy goes
                unwrap(Client, "get")
            assert Client().get("k") == "value of k"
        assert Client.__dict__["get"] is ORIGINAL["get"], order


def test_a_bound_wrapper_left_by_another_unwrap_is_rewired_too() -> None:
    # two other proxies; the outer one's unwrap leaves the inner one *bound* in the class dict
    calls: list[str] = []
    _build(["other", "other"], calls)
    unwrap(Client, "get")
    assert isinstance(Client.__dict__["get"], PROXY)
    patches = Patches()
    patches.patch(MODULE, "Client.get", _tagging("tiertrace", calls))
    calls.clear()
    assert Client().get("k") == "value of k"
    assert calls == ["other", "tiertrace"]
    patches.unpatch()
    calls.clear()
    assert Client().get("k") == "value of k"
    assert calls == ["other"]
    unwrap(Client, "get")
    assert Client.__dict__["get"] is ORIGINAL["get"]
