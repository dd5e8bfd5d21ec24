"""The ``>>>`` examples in the package's documentation run and are true.

Every module with an example is listed here with its number of examples, so an example that
stops being collected (a docstring moved, a typo in ``>>>``) fails as surely as a wrong one,
and a module that gains examples must be added.
"""

from __future__ import annotations

import doctest
import importlib
import re

import pytest

import tiertrace
from support.tracebacks import package_dir

# module -> examples that run (``# doctest: +SKIP`` ones do not count)
EXAMPLES = {
    "tiertrace._core.sanitize.keys": 2,
    "tiertrace._core.sanitize.sql": 2,
    "tiertrace._core.errors": 1,
    "tiertrace._advisor.advisor": 8,
    "tiertrace._advisor.whatif": 7,
    "tiertrace._contract.names": 2,
    "tiertrace._contract.promql": 1,
    "tiertrace._contract.targets": 1,
}


@pytest.mark.parametrize(("name", "examples"), EXAMPLES.items())
def test_module_guide_examples_are_true(name: str, examples: int) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, raise_on_error=False, verbose=False)
    assert (result.failed, result.attempted) == (0, examples), name


def test_every_module_with_examples_is_listed() -> None:
    src = package_dir(tiertrace)
    found = {
        ".".join(("tiertrace", *path.relative_to(src).with_suffix("").parts))
        for path in src.rglob("*.py")
        if re.search(r"^\s*>>> ", path.read_text("utf-8"), re.M)
    }
    assert found == set(EXAMPLES)
