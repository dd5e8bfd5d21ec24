"""The composition root: settings, providers and the metric path, stats, the live handle."""

from tiertrace._runtime.config import Settings
from tiertrace._runtime.handle import Handle
from tiertrace._runtime.process import attach, bridge_reader, handle, init, reset, shutdown

__all__ = [
    "Handle",
    "Settings",
    "attach",
    "bridge_reader",
    "handle",
    "init",
    "reset",
    "shutdown",
]
