"""Where the current segment/subsegment lives: one ContextVar per Context, holding an immutable tuple.

Because the stack is a tuple stored in a ContextVar, every thread starts empty, every asyncio task
inherits a snapshot of its creator's stack that it cannot corrupt, and concurrent tasks never see
each other's subsegments. Threads and asyncio share this single implementation.
"""
import itertools
import logging
import os
from contextvars import ContextVar
from typing import Any, Optional, Tuple

from .. import global_sdk_config
from .exceptions.exceptions import SegmentNotFoundException

log = logging.getLogger(__name__)

MISSING_SEGMENT_MSG = 'cannot find the current segment/subsegment, please make sure you have a segment open'
SUPPORTED_CONTEXT_MISSING = ('RUNTIME_ERROR', 'LOG_ERROR', 'IGNORE_ERROR')
CXT_MISSING_STRATEGY_KEY = 'AWS_XRAY_CONTEXT_MISSING'

_context_ids = itertools.count()


def _is_subsegment(entity: Any) -> bool:
    return getattr(entity, 'type', None) == 'subsegment'


class Context:
    """Stack of open entities for the current thread or task.

    Args:
        context_missing: what to do when an entity is needed and none is open: ``RUNTIME_ERROR``
            (raise SegmentNotFoundException), ``LOG_ERROR`` (log, return None) or ``IGNORE_ERROR``.
            ``AWS_XRAY_CONTEXT_MISSING`` overrides it.
    """

    def __init__(self, context_missing: str = 'LOG_ERROR') -> None:
        self._entities: ContextVar[Tuple[Any, ...]] = ContextVar(
            'aws_like_sdk_entities_%d' % next(_context_ids), default=())
        self._context_missing = 'LOG_ERROR'
        self.context_missing = os.environ.get(CXT_MISSING_STRATEGY_KEY, context_missing)

    # -- segments --------------------------------------------------------------------------------
    def put_segment(self, segment) -> None:
        """Make ``segment`` the only open entity, replacing whatever was open."""
        self._entities.set((segment,))

    def end_segment(self, end_time: Optional[float] = None) -> None:
        """Close the current segment (the owning segment when a subsegment is current)."""
        entity = self.get_trace_entity()
        if entity is None:
            log.warning('No segment to end.')
            return
        segment = entity.parent_segment if _is_subsegment(entity) else entity
        segment.close(end_time)

    # -- subsegments -----------------------------------------------------------------------------
    def put_subsegment(self, subsegment) -> None:
        """Attach ``subsegment`` to the current entity and make it current."""
        stack = self._entities.get()
        if not stack:
            entity = self.get_trace_entity()
            if entity is None:
                log.warning('Active segment or subsegment not found. Discarded %s.', subsegment.name)
                return
            stack = (entity,)
        stack[-1].add_subsegment(subsegment)
        self._entities.set(stack + (subsegment,))

    def end_subsegment(self, end_time: Optional[float] = None) -> bool:
        """Close and pop the current subsegment. Returns False when the current entity is not one."""
        stack = self._entities.get()
        if not stack or not _is_subsegment(stack[-1]):
            unsampled_segment = bool(stack) and stack[-1].sampled is False
            if not unsampled_segment:
                log.warning('No subsegment to end.')
            return False
        stack[-1].close(end_time)
        self._entities.set(stack[:-1])
        return True

    def end_subsegment_entity(self, subsegment, end_time: Optional[float] = None) -> None:
        """Close ``subsegment`` by handle, wherever it is.

        The usual case is that it is the current entity. If subsegments opened inside it were left
        open, they are closed too (with a warning) so the segment can still be emitted; if it was
        begun in another task or thread, it is closed without touching this context's stack.
        """
        stack = self._entities.get()
        if stack and stack[-1] is subsegment:
            subsegment.close(end_time)
            self._entities.set(stack[:-1])
            return
        for index in range(len(stack) - 1, -1, -1):
            if stack[index] is subsegment:
                for leaked in reversed(stack[index + 1:]):
                    if _is_subsegment(leaked) and leaked.in_progress:
                        log.warning('Subsegment %r was left open inside %r; closing it.', leaked.name,
                                    subsegment.name)
                        leaked.close(end_time)
                subsegment.close(end_time)
                self._entities.set(stack[:index])
                return
        subsegment.close(end_time)

    # -- access ----------------------------------------------------------------------------------
    def get_trace_entity(self):
        """Return the current entity; on an empty stack apply the context-missing strategy."""
        stack = self._entities.get()
        if stack:
            return stack[-1]
        if not global_sdk_config.sdk_enabled():
            from .models.dummy_entities import DummySegment
            return DummySegment()
        return self.handle_context_missing()

    def peek_trace_entity(self):
        """Return the current entity or None, without applying the context-missing strategy."""
        stack = self._entities.get()
        return stack[-1] if stack else None

    def set_trace_entity(self, trace_entity) -> None:
        """Make ``trace_entity`` (a segment or subsegment) current, e.g. in a worker thread."""
        self._entities.set((trace_entity,))

    def clear_trace_entities(self) -> None:
        """Forget every open entity in this thread or task."""
        self._entities.set(())

    def handle_context_missing(self):
        """Apply the context-missing strategy: raise, log an error, or stay silent. Returns None."""
        strategy = self._context_missing
        if strategy == 'RUNTIME_ERROR':
            raise SegmentNotFoundException(MISSING_SEGMENT_MSG)
        if strategy == 'LOG_ERROR':
            log.error(MISSING_SEGMENT_MSG)
        return None

    @property
    def context_missing(self) -> str:
        return self._context_missing

    @context_missing.setter
    def context_missing(self, value: str) -> None:
        if value not in SUPPORTED_CONTEXT_MISSING:
            log.warning('Unsupported context missing strategy %r; keeping %s. Use one of %s.',
                        value, self._context_missing, ', '.join(SUPPORTED_CONTEXT_MISSING))
            return
        self._context_missing = value
