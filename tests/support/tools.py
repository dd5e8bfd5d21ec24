"""Programs some tests need (promtool, Prometheus, Chromium …): where they are, and the skip.

A test that needs a program which is not installed is skipped with one reason of one form,
``<program> not installed (<command that installs it>)``, and the run ends with one line
naming every such reason (`summary_line`, printed after pytest's own last line by a hook of
``tests/conftest.py``). ``TIERTRACE_TEST_NO_SKIP=1`` turns any skip into a failed run.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

INSTALL = {
    "promtool": "apt-get install -y prometheus",
    "prometheus": "apt-get install -y prometheus",
    "chromium": "apt-get install -y chromium",
    "redis-server": "apt-get install -y redis-server",
    "postgresql": "apt-get install -y postgresql",
    "chroma": "pip install chromadb",
}
ALIASES = {"chromium": ("chromium", "chromium-browser"), "postgresql": ("initdb", "pg_ctl")}
NO_SKIP_ENV = "TIERTRACE_TEST_NO_SKIP"


def install_hint(program: str) -> str:
    return INSTALL[program]


def missing_reason(program: str) -> str:
    """The skip reason of a test that needs ``program``: why, and the command that fixes it."""
    return f"{program} not installed ({install_hint(program)})"


def find(program: str) -> str | None:
    """The path of ``program`` (next to this Python first, then on PATH), or None."""
    for name in ALIASES.get(program, (program,)):
        beside = Path(sys.executable).with_name(name)
        found = str(beside) if beside.exists() else shutil.which(name)
        if found is not None:
            return found
    return None


def need(program: str) -> str:
    """The path of ``program``; inside a test or fixture, skip it when ``program`` is missing."""
    found = find(program)
    if found is None:
        pytest.skip(missing_reason(program))
    return found


def requires(program: str) -> pytest.MarkDecorator:
    """A ``skipif`` mark for tests that need ``program``."""
    return pytest.mark.skipif(find(program) is None, reason=missing_reason(program))


def skip_reason(report: Any) -> str:
    """The reason of a skipped test's report, without pytest's ``Skipped: `` prefix."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def summary_line(reasons: Iterable[str]) -> str | None:
    """``tiertrace: N tests skipped: reason, reason`` (distinct reasons, most frequent first)."""
    counted = Counter(reasons)
    total = sum(counted.values())
    if not total:
        return None
    tests = "test" if total == 1 else "tests"
    listed = ", ".join(reason for reason, _ in counted.most_common())
    return f"tiertrace: {total} {tests} skipped: {listed}"
