"""What the tests share: one way to start a service, the shipped assets, the telemetry readers.

``tests/`` is on ``sys.path`` (``pythonpath`` in the pytest configuration), so a test module
imports ``support.services``, ``support.chroma`` … wherever the checkout lives.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: tests/support/__init__.py
ASSETS = ROOT / "src" / "tiertrace" / "assets"  # the shipped stack (package data)
