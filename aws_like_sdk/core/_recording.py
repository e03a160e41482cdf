"""Run a callable inside a subsegment: the one core shared by capture, record_subsegment(_async)
and every library patch, so the sync and async paths cannot drift apart."""
import functools
import logging
import sys
import time
from typing import Any, Callable, Optional

from .. import global_sdk_config
from .context import materialized
from .models.pending_segment import PendingSegment
from .models.segment import Segment
from .models.subsegment import Subsegment
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


def push_subsegment(var, stack, name: str, namespace: str) -> Optional[Subsegment]:
    """Begin a subsegment under ``stack[-1]`` and push it onto ``var``; the recorder's fast path.

    This is Context.put_subsegment and the parents' add_subsegment for the common case: the
    current entity is a plain, sampled, open Segment or Subsegment. Returns None (having changed
    nothing) in every other case, which the caller hands to the general path.
    """
    parent = stack[-1]
    cls = parent.__class__
    if cls is Subsegment:
        segment = parent.parent_segment
    elif cls is Segment:
        segment = parent
    elif cls is PendingSegment:
        # The request's segment, asked for for the first time: build it and go on with it.
        stack = materialized(var, stack)
        segment = parent = stack[-1]
    else:
        return None
    if not parent.sampled or not parent.in_progress:
        return None
    subsegment = Subsegment(name, namespace, segment)
    subsegment.parent_id = parent.id
    children = parent._subs
    if children is None:
        parent._subs = [subsegment]
    else:
        children.append(subsegment)
    segment._open.append(None)
    segment._attached.append(None)
    var.set(stack + (subsegment,))
    return subsegment


def capture_sync(recorder, wrapped: Callable, name: str, namespace: str) -> Callable:
    """Return what ``capture`` puts in place of the plain function ``wrapped``.

    A plain closure (no wrapt proxy) whose common case -- SDK enabled, a sampled segment or
    subsegment open, the recorder and context not customised -- begins the subsegment on the
    context's stack directly (:func:`push_subsegment`) and ends it through the recorder's inline
    ``end_subsegment_by_handle``. Anything else goes through ``recorder.record_subsegment``,
    exactly as upstream's decorator does.
    """
    @functools.wraps(wrapped)
    def decorated(*args, **kwargs):
        context = recorder._fast_context
        var = context._fast if context is not None else None
        if var is None or not global_sdk_config.sdk_enabled():
            return recorder.record_subsegment(wrapped, None, args, kwargs, name, namespace, None)
        stack = var.get()
        subsegment = push_subsegment(var, stack, name, namespace) if stack else None
        if subsegment is None:
            return recorder.record_subsegment(wrapped, None, args, kwargs, name, namespace, None)
        try:
            return_value = wrapped(*args, **kwargs)
        except BaseException as exc:
            finish_subsegment(recorder, subsegment, wrapped, None, args, kwargs, None, exc,
                              get_stacktrace(limit=recorder.max_trace_back), None)
            raise
        recorder.end_subsegment_by_handle(subsegment, time.time())
        return return_value

    return decorated


def capture_async(recorder, wrapped: Callable, name: str, namespace: str) -> Callable:
    """Return what ``capture`` puts in place of the coroutine function ``wrapped``.

    The awaited call runs inside the subsegment. The common case (as in :func:`capture_sync`)
    begins and ends the subsegment on the context's stack directly; anything else goes through
    :func:`record_async`.
    """
    @functools.wraps(wrapped)
    async def decorated(*args, **kwargs):
        context = recorder._fast_context
        var = context._fast if context is not None else None
        if var is None or not global_sdk_config.sdk_enabled():
            return await record_async(recorder, wrapped, None, args, kwargs, name, namespace, None)
        stack = var.get()
        subsegment = push_subsegment(var, stack, name, namespace) if stack else None
        if subsegment is None:
            return await record_async(recorder, wrapped, None, args, kwargs, name, namespace, None)
        try:
            return_value = await wrapped(*args, **kwargs)
        except BaseException as exc:
            finish_subsegment(recorder, subsegment, wrapped, None, args, kwargs, None, exc,
                              get_stacktrace(limit=recorder.max_trace_back), None)
            raise
        recorder.end_subsegment_by_handle(subsegment, time.time())
        return return_value

    return decorated
