"""The README's quickstart runs as written (against this session's private Redis and database)
and prints what the README says it prints."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

from support import ROOT
from support.services import free_port

README = ROOT / "README.md"


def test_readme_quickstart_runs_and_serves_the_second_call_from_redis(
    redis_url: str, pg_dsn: str
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    code = blocks[0]
    assert "tiertrace.init(" in code
    code = code.replace("redis.Redis()", f"redis.Redis.from_url({redis_url!r})")
    code = code.replace('"postgresql://postgres@127.0.0.1/postgres"', repr(pg_dsn))
    assert repr(redis_url) in code and repr(pg_dsn) in code  # the session's stores, not others
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIERTRACE_", "OTEL_"))}
    env["TIERTRACE_PROMETHEUS_PORT"] = str(free_port())
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    *_, printed = done.stdout.strip().splitlines()  # the last line: the served_by dict
    served = ast.literal_eval(printed)
    # the README promises {'redis': 1, 'postgresql': 1, ...}: exactly, and nothing else served
    assert list(served)[:2] == ["redis", "postgresql"], printed
    assert served == {name: 1 if name in ("redis", "postgresql") else 0 for name in served}
    assert printed.startswith(_promised(code)), (printed, code)


def _promised(code: str) -> str:
    """What the README's ``print(...)  # {...}`` comment says comes first, up to ``...``."""
    (comment,) = re.findall(r"^print\(.*?#\s*(\{.*\})\s*$", code, re.M)
    return comment.split("...")[0].rstrip(", ")
