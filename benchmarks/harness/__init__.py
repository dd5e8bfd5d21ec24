"""Shared parts of the benchmarks in this directory.

* `services`  — the private redis-server, the PostgreSQL database and the Chroma collection of a
  run (free ports and private servers come from ``tiertrace._cli.services``);
* `modes`     — the configurations a run switches between (raw, metrics, full, the contrib
  anchors) and the check that raw is raw;
* `workload`  — the operations timed, and the clients they run on;
* `timing`    — interleaved repetitions, wall and CPU time per call, paired differences, medians;
* `floor`     — what the OpenTelemetry SDK itself costs (span, histogram point, aggregation slot);
* `throughput`— many threads or asyncio tasks on one client for a fixed time;
* `profiling` — one operation in a loop for py-spy or cProfile, and the py-spy summary;
* `ablation`  — one part of tiertrace's per-access work switched off (`instructions.py --ablate`,
  `ablation.py`);
* `report`    — the machine, the goals, the text tables, JSON and the markdown of RESULTS.md;
* `runner`    — the overhead run that ties them together.

The scripts import it as ``harness`` (their own directory is first on ``sys.path``); importing
it makes ``tiertrace`` importable from a checkout without an install (``from harness import
tiertrace`` where a script needs it before anything else of the harness).
"""

from __future__ import annotations

import os
import sys

try:
    import tiertrace
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src"))
    import tiertrace

__all__ = ["tiertrace"]
