"""The optimization advisor (guide: `tiertrace._advisor.advisor`).

`tables` holds the bounded windowed tables, `recorder` fills them (``observe_*``) and hands out
a read-only `Window`, `findings` turns a window into `Suggestion` objects, and `advisor`'s
`Advisor` composes the recorder and the rules behind one interface.
"""

from tiertrace._advisor.advisor import Advisor
from tiertrace._advisor.findings import SUGGESTION_FIELDS, Suggestion, Thresholds
from tiertrace._advisor.recorder import PatternView, Recorder, TierView, Window

__all__ = [
    "SUGGESTION_FIELDS",
    "Advisor",
    "PatternView",
    "Recorder",
    "Suggestion",
    "Thresholds",
    "TierView",
    "Window",
]
