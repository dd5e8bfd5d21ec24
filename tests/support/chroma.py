"""A real Chroma server for the tests: ``chroma run`` on a free loopback port.

`ChromaProcess` is the one way to start it: once per session for the ``chroma_server``
fixture, and per test where a test kills and restarts it (same port, same data directory).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.services import free_port
from support.tools import find, missing_reason

STARTUP_TIMEOUT_S = 60.0


class ChromaProcess:
    """``chroma run --path <tmp>/data --host 127.0.0.1 --port <free>``; `start` again after
    `kill` reuses the port and the data directory; `stop` removes both."""

    host = "127.0.0.1"

    def __init__(self, prefix: str = "tiertrace-chroma-") -> None:
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix=prefix))
        self.path = str(self.workdir / "data")
        self.log = self.workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        binary = find("chroma")
        if binary is None:
            pytest.fail(missing_reason("chroma"))
        argv = [binary, "run", "--path", self.path, "--host", self.host, "--port", str(self.port)]
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"chroma run exited with {self.proc.returncode}:\n{self._log_tail()}")
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"chroma run did not answer its heartbeat within {STARTUP_TIMEOUT_S:.0f} s:\n"
                    f"{self._log_tail()}"
                )
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return "<no log>"


@pytest.fixture(scope="session")
def chroma_server() -> Iterator[ChromaProcess]:
    """One Chroma server for the session (``.host``, ``.port``, ``.url``, ``.path``)."""
    server = ChromaProcess()
    try:
        server.start()
        yield server
    finally:
        server.stop()
