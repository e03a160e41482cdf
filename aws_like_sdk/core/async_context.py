"""AsyncContext: the upstream name and constructor, over the ContextVar-based Context.

Upstream stored entities on each asyncio Task and installed a task factory, which broke uvloop
and custom factories (#417) and needed a loop at construction. ContextVars already follow tasks
(every task starts with a copy of its creator's context), so this class installs nothing and keeps
its arguments only for compatibility. ``TaskLocalStorage`` and ``task_factory`` stay importable for
code that used them directly.
"""
import asyncio
import weakref
from typing import Any, Coroutine, Optional

from .context import Context

__all__ = ['AsyncContext', 'TaskLocalStorage', 'task_factory']


def _running_loop() -> Optional[asyncio.AbstractEventLoop]:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class AsyncContext(Context):
    """Context for asyncio applications; identical in behaviour to :class:`Context`.

    Safe to build before any loop exists (module level, Lambda init) and to share between loops:
    each task sees its own snapshot of the entity stack, inherited from the code that created it.

    Args:
        *args: forwarded to :class:`Context` (``context_missing``).
        loop: kept as ``self._loop`` for compatibility; defaults to the running loop, if any.
            Nothing is bound to it.
        use_task_factory: kept as ``self._use_task_factory``; no task factory is ever installed,
            so a factory the application (or uvloop) set stays in place.
        **kwargs: forwarded to :class:`Context`.
    """

    def __init__(self, *args: Any, loop: Optional[asyncio.AbstractEventLoop] = None,
                 use_task_factory: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop = loop if loop is not None else _running_loop()
        self._use_task_factory = use_task_factory


class TaskLocalStorage:
    """Attributes private to the current asyncio task (compatibility class; the SDK does not use it).

    Outside a task, reads return None and writes are dropped. Storage is released with the task.

    Args:
        loop: kept as ``_loop`` for compatibility; the current task is looked up on the running loop.
    """

    def __init__(self, loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
        object.__setattr__(self, '_loop', loop)
        object.__setattr__(self, '_by_task', weakref.WeakKeyDictionary())

    @staticmethod
    def _current_task() -> Optional[asyncio.Task]:
        return asyncio.current_task() if _running_loop() is not None else None

    def __setattr__(self, name: str, value: Any) -> None:
        task = self._current_task()
        if task is None:
            return
        by_task = object.__getattribute__(self, '_by_task')
        by_task.setdefault(task, {})[name] = value

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not real attributes of the instance.
        if name.startswith('__'):
            raise AttributeError(name)
        task = self._current_task()
        if task is None:
            return None
        values = object.__getattribute__(self, '_by_task').get(task, {})
        try:
            return values[name]
        except KeyError:
            raise AttributeError('Task context does not have attribute %s' % name) from None

    def clear(self) -> None:
        """Forget every attribute stored for the current task."""
        task = self._current_task()
        if task is not None:
            object.__getattribute__(self, '_by_task').pop(task, None)


def task_factory(loop: asyncio.AbstractEventLoop, coro: Coroutine, **kwargs: Any) -> asyncio.Task:
    """A plain task factory, kept for code that installed upstream's by hand.

    Tasks already copy the creating code's contextvars, which is all trace context needs, so this
    only creates the task. Unlike upstream it accepts the ``name``/``context`` keywords newer event
    loops pass (#417).

    Args:
        loop: the event loop creating the task.
        coro: the coroutine to wrap.
        **kwargs: ``name``, ``context`` and any other keyword the loop passes on to ``asyncio.Task``.

    Returns:
        The new task.
    """
    return asyncio.Task(coro, loop=loop, **kwargs)
