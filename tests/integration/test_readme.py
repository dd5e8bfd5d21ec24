"""The README's quickstart runs as written (against this session's private Redis and database)
and prints what the README says it prints."""

from __future__ import annotations

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
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIERTRACE_", "OTEL_"))}
    env["TIERTRACE_PROMETHEUS_PORT"] = str(free_port())
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "'redis': 1" in done.stdout and "'postgresql': 1" in done.stdout, done.stdout
