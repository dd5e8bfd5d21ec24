"""Switching one part of tiertrace's per-access work off, to see what it costs.

`instructions.py --ablate` counts metrics-only instructions and `ablation.py` times metrics-only
CPU with each part of `PARTS` made a no-op in turn. The switch patches tiertrace's classes and
cannot be undone: each part runs in a process of its own, before ``tiertrace.init()`` (which
binds the parts it calls once).
"""

from __future__ import annotations

# ``grouping``: everything after the access's own slot (lookup grouping, the advisor, the
# lookup's metric point, the TTL what-if); then three of its parts, one at a time
PARTS = ("grouping", "advisor", "lookup_point", "whatif")


def switch_off(part: str) -> None:
    """Make one part of `PARTS` a no-op (before ``tiertrace.init()``)."""
    from tiertrace._advisor.recorder import Recorder
    from tiertrace._advisor.whatif import WhatIf
    from tiertrace._core import recorder
    from tiertrace._lookups.events import Emitter

    nothing = lambda *_args: None  # noqa: E731
    if part == "advisor":
        Recorder.observe_alone = nothing  # type: ignore[method-assign]
    elif part == "lookup_point":
        Emitter.record_single = nothing  # type: ignore[method-assign]
    elif part == "whatif":
        WhatIf.observe = nothing  # type: ignore[method-assign]
    elif part == "grouping":  # no sink at all
        configure = recorder.configure
        recorder.configure = lambda telemetry, _sink, _settle=None: configure(telemetry, None)  # type: ignore[assignment]
    else:
        raise ValueError(f"unknown part {part!r} (one of {', '.join(PARTS)})")
