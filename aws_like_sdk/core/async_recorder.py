"""Async entry points over the same recorder: capture_async and async context managers.

There is no second implementation: context lives in ContextVars (shared with threads) and the
"run inside a subsegment" logic is the one in ``_recording``. Each asyncio task starts with a
snapshot of its creator's entity stack, so ``asyncio.gather`` of captured coroutines gives every
subsegment the right parent without any task factory.
"""
from typing import Any, Callable, Optional

from . import _recording
from .models.segment import SegmentContextManager
from .models.subsegment import SubsegmentContextManager, _is_coroutine_function
from .recorder import AWSXRayRecorder

__all__ = ['AsyncAWSXRayRecorder', 'AsyncSegmentContextManager', 'AsyncSubsegmentContextManager']

is_coroutine_function = _is_coroutine_function


class AsyncSegmentContextManager(SegmentContextManager):
    """``async with recorder.in_segment_async(name) as segment:``.

    Begins the segment on entry, records an exception escaping the block, always ends the segment,
    and never swallows the exception.
    """

    async def __aenter__(self):
        return self.__enter__()

    async def __aexit__(self, exc_type, exc_val, exc_tb) -> None:
        return self.__exit__(exc_type, exc_val, exc_tb)


class AsyncSubsegmentContextManager(SubsegmentContextManager):
    """``async with recorder.in_subsegment_async(name) as subsegment:``, also a decorator.

    As a decorator of a coroutine function it awaits the coroutine inside the subsegment, so the
    recorded duration covers the awaited work; sync functions are recorded as with ``capture``.
    """

    async def __aenter__(self):
        return self.__enter__()

    async def __aexit__(self, exc_type, exc_val, exc_tb) -> None:
        return self.__exit__(exc_type, exc_val, exc_tb)


class AsyncAWSXRayRecorder(AWSXRayRecorder):
    """The recorder type of the global ``xray_recorder``: one object serves sync and async code.

    The default context already follows asyncio tasks; ``configure(context=AsyncContext())`` is
    accepted for compatibility and behaves the same.
    """

    def capture_async(self, name: Optional[str] = None) -> AsyncSubsegmentContextManager:
        """Decorator for ``async def`` functions: one subsegment per call, spanning the awaited coroutine.

        ``capture`` does the same for coroutine functions; this name is kept for upstream code.

        Args:
            name: subsegment name; defaults to the function's ``__name__``.

        Returns:
            A decorator (also usable as ``async with``).
        """
        return self.in_subsegment_async(name=name)

    def in_segment_async(self, name: Optional[str] = None, **segment_kwargs: Any) -> AsyncSegmentContextManager:
        """Async context manager that begins a segment and always ends it.

        Args:
            name: segment name; defaults to the configured service name.
            **segment_kwargs: ``traceid``, ``parent_id``, ``sampling``, as for ``begin_segment``.

        Returns:
            The context manager; ``async with`` yields the segment.
        """
        return AsyncSegmentContextManager(self, name=name, **segment_kwargs)

    def in_subsegment_async(self, name: Optional[str] = None,
                            **subsegment_kwargs: Any) -> AsyncSubsegmentContextManager:
        """Async context manager (and coroutine-function decorator) that records a subsegment.

        Args:
            name: subsegment name; as a decorator, defaults to the function's ``__name__``.
            **subsegment_kwargs: ``namespace`` (``'local'`` by default).

        Returns:
            The context manager; ``async with`` yields the subsegment (None when no segment is open).
        """
        return AsyncSubsegmentContextManager(self, name=name, **subsegment_kwargs)

    async def record_subsegment_async(self, wrapped: Callable, instance: Any, args, kwargs, name: str,
                                      namespace: str, meta_processor: Optional[Callable]) -> Any:
        """Await ``wrapped(*args, **kwargs)`` inside a subsegment (used by async library patches).

        Args:
            wrapped: the coroutine function to await.
            instance: the bound instance, passed on to ``meta_processor``.
            args: positional arguments for ``wrapped``.
            kwargs: keyword arguments for ``wrapped``.
            name: subsegment name.
            namespace: ``'local'``, ``'remote'`` or ``'aws'``.
            meta_processor: called with the outcome to annotate the subsegment; None records only
                an exception.

        Returns:
            What ``wrapped`` returned; its exception propagates unchanged.
        """
        return await _recording.record_async(self, wrapped, instance, args, kwargs, name, namespace,
                                             meta_processor)
