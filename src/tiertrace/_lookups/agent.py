"""``track_agent``: make an agent's memory methods explicit lookups carrying its id.

::

    class Agent:
        def recall(self, question: str) -> str: ...
        async def remember(self, fact: str) -> None: ...

    agent = Agent()
    undo = tiertrace.track_agent(agent, methods=("recall", "remember"), agent_id="planner")
    agent.recall("what did alice order?")   # one lookup, gen_ai.agent.id="planner"
    undo()                                   # the methods are the originals again

Each call of a tracked method runs inside ``tiertrace.lookup(query_type=<method name>,
agent_id=...)``, applied as a decorator (`tiertrace._lookups.grouping.lookup` handles sync
and ``async def`` methods alike). Only the given object is changed (instance attributes),
never its class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tiertrace._core.errors import ConfigError
from tiertrace._lookups.grouping import lookup


def track_agent(
    obj: Any, methods: Sequence[str] = ("recall", "remember", "search"), agent_id: str | None = None
) -> Callable[[], None]:
    """Make each call of ``obj``'s memory methods an explicit lookup carrying the agent's id.

    Each call of a tracked method runs inside ``tiertrace.lookup(query_type=<method name>,
    agent_id=agent_id)``; sync and ``async def`` methods alike. Only ``obj`` changes
    (instance attributes), never its class.

    Args:
        obj: the agent (any object).
        methods: names of its methods to track.
        agent_id: put on each lookup span as ``gen_ai.agent.id``.

    Returns:
        A function that restores the original methods.

    Raises:
        ConfigError: ``obj`` has no callable of one of the names.

    Example:
        ```python
        undo = tiertrace.track_agent(agent, methods=("recall", "remember"), agent_id="planner")
        agent.recall("what did alice order?")   # one lookup, gen_ai.agent.id="planner"
        undo()
        ```
    """
    wrapped: list[str] = []
    for name in methods:
        method = getattr(obj, name, None)
        if method is None or not callable(method):
            raise ConfigError(f"track_agent: {type(obj).__name__} has no method {name!r}")
        setattr(obj, name, lookup(query_type=name, agent_id=agent_id)(method))
        wrapped.append(name)

    def undo() -> None:
        for name in wrapped:
            if name in vars(obj):
                delattr(obj, name)
        wrapped.clear()

    return undo
