"""Carry the current trace context by hand into threads the application starts itself.

A new thread starts with an empty context, so a subsegment begun there finds no segment. Thread
pools are handled by the ``futures`` patch; for everything else, bind the callable where the
context is known::

    from aws_like_sdk.core.context_propagation import bind_trace_context

    threading.Thread(target=bind_trace_context(work), args=(item,)).start()

Each call of the bound callable runs in its own copy of the context captured at bind time, so
subsegments it begins get the right parent, what it changes never leaks back into the caller,
and the same bound callable may run in several threads at once.
"""
import contextvars
import functools
import threading
from typing import Any, Callable, TypeVar

__all__ = ['bind_trace_context', 'TracedThread']

T = TypeVar('T')


def bind_trace_context(fn: Callable[..., T]) -> Callable[..., T]:
    """Return ``fn`` bound to the trace context that is current now.

    Args:
        fn: any callable (a thread target, a callback, a function handed to another library).

    Returns:
        A callable with ``fn``'s signature and metadata that runs ``fn`` in a copy of the context
        captured by this call, whatever thread later calls it.
    """
    captured = contextvars.copy_context()

    @functools.wraps(fn)
    def bound(*args: Any, **kwargs: Any) -> T:
        # A Context can be entered by one thread at a time; a fresh copy per call lets the bound
        # callable run concurrently and keeps each call's changes to itself.
        return captured.copy().run(fn, *args, **kwargs)

    return bound


class TracedThread(threading.Thread):
    """A drop-in ``threading.Thread`` whose ``run()`` sees the context of the code that built it.

    Subclasses that override ``run()`` must call ``super().run()`` to keep the context, or wrap
    their work with :func:`bind_trace_context`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._trace_context = contextvars.copy_context()

    def run(self) -> None:
        self._trace_context.run(super().run)
