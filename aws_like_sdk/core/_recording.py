"""Run a callable inside a subsegment: the one core shared by capture, record_subsegment(_async)
and every library patch, so the sync and async paths cannot drift apart."""
import logging
import sys
import time
from typing import Any, Callable, Optional

from .utils.stacktrace import get_stacktrace

log = logging.getLogger(__name__)

_reported: set = set()


def _warn_once(key: Any, message: str, *args: Any) -> None:
    # A broken meta processor or recorder seam fails on every call: one traceback tells the story,
    # one per call would flood the application's logs.
    key = (key, sys.exc_info()[0])
    if key in _reported:
        log.debug(message, *args, exc_info=True)
        return
    _reported.add(key)
    log.warning(message + ' Further identical failures are logged at DEBUG.', *args, exc_info=True)


def finish_subsegment(recorder, subsegment, wrapped: Callable, instance: Any, args, kwargs,
                      return_value: Any, exception: Optional[BaseException], stack,
                      meta_processor: Optional[Callable]) -> None:
    """Annotate and end ``subsegment`` after the wrapped call returned or raised.

    A failing ``meta_processor`` is logged and otherwise ignored: instrumentation must never change
    what the application sees.
    """
    if subsegment is None:
        return
    end_time = time.time()
    if meta_processor is None and exception is None:
        recorder.end_subsegment_by_handle(subsegment, end_time)
        return
    try:
        if meta_processor is not None:
            meta_processor(wrapped=wrapped, instance=instance, args=args, kwargs=kwargs,
                           return_value=return_value, exception=exception, subsegment=subsegment, stack=stack)
        elif exception is not None:
            subsegment.add_exception(exception, stack)
    except Exception:  # noqa: BLE001
        _warn_once(('metadata', getattr(meta_processor, '__qualname__', None)),
                   'Recording metadata for subsegment %r failed.', getattr(subsegment, 'name', None))
    try:
        recorder.end_subsegment_by_handle(subsegment, end_time)
    except Exception:  # noqa: BLE001
        _warn_once('end', 'Ending subsegment %r failed.', getattr(subsegment, 'name', None))


def record_sync(recorder, wrapped: Callable, instance: Any, args, kwargs, name: str, namespace: str,
                meta_processor: Optional[Callable]) -> Any:
    """Call ``wrapped`` inside a subsegment and return its result (or re-raise its exception)."""
    subsegment = recorder.begin_subsegment(name, namespace)
    exception = stack = return_value = None
    try:
        return_value = wrapped(*args, **kwargs)
        return return_value
    except BaseException as exc:
        exception = exc
        stack = get_stacktrace(limit=recorder.max_trace_back)
        raise
    finally:
        finish_subsegment(recorder, subsegment, wrapped, instance, args, kwargs, return_value,
                          exception, stack, meta_processor)


async def record_async(recorder, wrapped: Callable, instance: Any, args, kwargs, name: str, namespace: str,
                       meta_processor: Optional[Callable]) -> Any:
    """Await ``wrapped(*args, **kwargs)`` inside a subsegment; the async twin of :func:`record_sync`."""
    subsegment = recorder.begin_subsegment(name, namespace)
    exception = stack = return_value = None
    try:
        return_value = await wrapped(*args, **kwargs)
        return return_value
    except BaseException as exc:
        exception = exc
        stack = get_stacktrace(limit=recorder.max_trace_back)
        raise
    finally:
        finish_subsegment(recorder, subsegment, wrapped, instance, args, kwargs, return_value,
                          exception, stack, meta_processor)
