"""Child processes of the tests: started so that they die with the test process, stopped politely.

`spawn` is the one way a test or fixture starts a long-running helper process (a workload, a
Prometheus …): its output goes to a log file and it gets SIGTERM when the test process dies, so
an interrupted run leaves no orphans. `stop` ends it: SIGTERM, then SIGKILL after ``timeout``.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["die_with_parent", "spawn", "stop", "tail"]


def die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies (Linux), no orphans."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(argv: Sequence[str], log: Path, *, cwd: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` in ``cwd``, stdout and stderr into ``log``; it dies with the test process.

    ``kwargs`` go to `subprocess.Popen` (``env`` …).
    """
    with log.open("wb") as out:
        return subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            preexec_fn=die_with_parent,
            **kwargs,
        )


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 20.0) -> None:
    """SIGTERM, and SIGKILL when ``proc`` has not exited after ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def tail(path: Path, chars: int = 3000) -> str:
    """The end of a log file, for a failure message (``<no log>`` when there is none)."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "<no log>"
