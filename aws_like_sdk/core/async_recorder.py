"""Async entry points over the same recorder: capture_async and async context managers.

There is no second implementation: context lives in ContextVars (shared with threads) and the
"run inside a subsegment" logic is the one in ``_recording``.
"""
from typing import Any, Callable, Optional

from . import _recording
from .models.segment import SegmentContextManager
from .models.subsegment import SubsegmentContextManager, _is_coroutine_function
from .recorder import AWSXRayRecorder


is_coroutine_function = _is_coroutine_function


class AsyncSegmentContextManager(SegmentContextManager):
    """``async with recorder.in_segment_async(name):``"""

    async def __aenter__(self):
        return self.__enter__()

    async def __aexit__(self, exc_type, exc_val, exc_tb) -> None:
        return self.__exit__(exc_type, exc_val, exc_tb)


class AsyncSubsegmentContextManager(SubsegmentContextManager):
    """``async with recorder.in_subsegment_async(name):``, also a decorator for coroutine functions
    (the decorator itself is inherited: it already awaits coroutines inside the subsegment)."""

    async def __aenter__(self):
        return self.__enter__()

    async def __aexit__(self, exc_type, exc_val, exc_tb) -> None:
        return self.__exit__(exc_type, exc_val, exc_tb)


class AsyncAWSXRayRecorder(AWSXRayRecorder):
    """The recorder type of the global ``xray_recorder``: serves sync and async code alike."""

    def capture_async(self, name: Optional[str] = None) -> AsyncSubsegmentContextManager:
        """Decorator for ``async def`` functions: the subsegment spans the awaited coroutine."""
        return self.in_subsegment_async(name=name)

    def in_segment_async(self, name: Optional[str] = None, **segment_kwargs: Any) -> AsyncSegmentContextManager:
        return AsyncSegmentContextManager(self, name=name, **segment_kwargs)

    def in_subsegment_async(self, name: Optional[str] = None,
                            **subsegment_kwargs: Any) -> AsyncSubsegmentContextManager:
        return AsyncSubsegmentContextManager(self, name=name, **subsegment_kwargs)

    async def record_subsegment_async(self, wrapped: Callable, instance: Any, args, kwargs, name: str,
                                      namespace: str, meta_processor: Optional[Callable]) -> Any:
        """Await ``wrapped`` inside a subsegment (used by async library patches)."""
        return await _recording.record_async(self, wrapped, instance, args, kwargs, name, namespace,
                                             meta_processor)
