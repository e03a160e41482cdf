"""AsyncContext: the upstream name and constructor, over the ContextVar-based Context.

Upstream stored entities on each asyncio Task and installed a task factory, which broke uvloop
and custom factories (#417). ContextVars already follow tasks, so this class installs nothing and
keeps its arguments only for compatibility.
"""
import asyncio
from typing import Any, Optional

from .context import Context


class AsyncContext(Context):
    """Context for asyncio applications; identical in behaviour to :class:`Context`.

    Args:
        loop: kept for compatibility (exposed as ``self._loop``); not required, ``asyncio.run`` works.
        use_task_factory: accepted and ignored: no task factory is ever installed.
    """

    def __init__(self, *args: Any, loop: Optional[asyncio.AbstractEventLoop] = None,
                 use_task_factory: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop = loop
        self._use_task_factory = use_task_factory
