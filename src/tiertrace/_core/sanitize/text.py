"""Bounded text for the sanitizers: any value read as text, and cut with ``…`` at a limit.

`read_text` reads ``str``, ``bytes``-like (decoded as UTF-8, never shown as ``b'...'``) or any
other object (via ``str``) up to a limit of characters; `bound_text` cuts a result to a limit
with ``…`` without leaving half an ``{id}``. Shared by `tiertrace._core.sanitize.keys` (keys, texts,
collection patterns) and `tiertrace._core.sanitize.sql` (statements).
"""

from __future__ import annotations

ID_MARK, _MORE = "{id}", "…"


def read_text(value: object, limit: int) -> tuple[str, bool]:
    """``value`` as text cut at ``limit`` characters, and whether it was cut."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = value.tobytes() if isinstance(value, memoryview) else value
        s, cut = bytes(raw[:limit]).decode("utf-8", "replace"), len(raw) > limit
    else:
        s = str.__str__(value) if isinstance(value, str) else "" if value is None else str(value)
        cut = len(s) > limit
    return (s[:limit].rstrip("\ufffd") if cut else s), cut


def bound_text(s: str, limit: int, cut: bool = False) -> str:
    if len(s) <= limit and not cut:
        return s
    head = s[: limit - 1]
    i = head.rfind("{", max(0, len(head) - 3))  # never leave half an "{id}"
    return (head[:i] if i >= 0 and s.startswith(ID_MARK, i) else head) + _MORE
