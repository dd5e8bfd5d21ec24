"""Read-through memory over the three tiers (guide: `tiertrace._memory.planner`).

`planner` holds what both front ends share (configuration, key derivation, the read-through
and write-through as steps, `LookupMetrics`, the `set_figures` hook the runtime registers);
`sync.TieredMemory` executes the steps with blocking calls and `aio.AsyncTieredMemory` awaits
them. The two are siblings that each compose one `Planner`.
"""

from tiertrace._memory.aio import AsyncTieredMemory
from tiertrace._memory.planner import Figures, LookupMetrics, Planner, set_figures
from tiertrace._memory.sync import TieredMemory

__all__ = [
    "AsyncTieredMemory",
    "Figures",
    "LookupMetrics",
    "Planner",
    "TieredMemory",
    "set_figures",
]
