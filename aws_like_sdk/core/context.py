"""Where the current segment/subsegment lives: one ContextVar per Context, holding an immutable tuple.

Because the stack is a tuple stored in a ContextVar, every thread starts empty, every asyncio task
inherits a snapshot of its creator's stack that it cannot corrupt, and concurrent tasks never see
each other's subsegments. Threads and asyncio share this single implementation.
"""
import itertools
import logging
import os
import threading
from contextvars import ContextVar
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .. import global_sdk_config
from .exceptions.exceptions import AlreadyEndedException, SegmentNotFoundException
from .models.pending_segment import PendingSegment
from .utils.own_methods import own_methods, stored_value, uses_own_methods

log = logging.getLogger(__name__)

MISSING_SEGMENT_MSG = 'cannot find the current segment/subsegment, please make sure you have a segment open'
SUPPORTED_CONTEXT_MISSING = ('RUNTIME_ERROR', 'LOG_ERROR', 'IGNORE_ERROR')
CXT_MISSING_STRATEGY_KEY = 'AWS_XRAY_CONTEXT_MISSING'

#: Metadata namespace and key under which a late subsegment explains where it was meant to go.
LATE_METADATA_NAMESPACE = 'aws_like_sdk'
LATE_METADATA_KEY = 'late_subsegment'

_context_ids = itertools.count()

# Late subsegments whose whole ancestry had ended, by segment; each is sent on its own once its
# subtree is closed, and the entry goes with it. (A late subsegment references its segment, so
# weak keys would not free anything earlier.)
_detached: Dict[Any, List[Any]] = {}
_detached_lock = threading.Lock()


def _reset_lock_in_child() -> None:
    global _detached_lock
    # A lock another thread held at fork() stays held forever in the child: replace it.
    _detached_lock = threading.Lock()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_reset_lock_in_child)


def materialized(var: 'ContextVar[Tuple[Any, ...]]', stack: Tuple[Any, ...]) -> Tuple[Any, ...]:
    """``stack`` with its pending segment (always at the bottom) built, and stored back in ``var``.

    Every reader that hands an entity out, or adds to one, calls this when it finds a
    :class:`~.models.pending_segment.PendingSegment`: from then on the context holds the real segment.
    """
    segment = stack[0].materialize()
    stack = (segment,) + stack[1:]
    var.set(stack)
    return stack


def _is_subsegment(entity: Any) -> bool:
    return getattr(entity, 'type', None) == 'subsegment'


def _adopt_late_subsegment(stack: Sequence[Any], subsegment) -> None:
    """Place ``subsegment`` whose intended parent (``stack[-1]``) has already ended.

    This happens when an asyncio task or a worker thread outlives the subsegment that started it.
    Adding a child to a closed entity would raise into the application, and reopening the parent
    would falsify its timing, so the subsegment goes under the nearest ancestor that is still open,
    flagged with ``error`` and metadata naming the intended parent. When the segment itself has
    ended, the subsegment keeps the intended parent's id and is sent as a document of its own once
    it (and everything under it) is closed, so the work still shows up in the trace.
    """
    intended = stack[-1]
    note = {'intended_parent_id': intended.id, 'intended_parent_name': intended.name,
            'reason': 'the parent ended before this subsegment began'}
    for ancestor in reversed(stack[:-1]):
        if not ancestor.in_progress:
            continue
        try:
            ancestor.add_subsegment(subsegment)
        except AlreadyEndedException:
            continue  # closed by another thread a moment ago; keep climbing
        log.warning('Subsegment %r began after its parent %r ended; recorded under %r instead.',
                    subsegment.name, intended.name, ancestor.name)
        _flag_late(subsegment, note)
        return
    segment = subsegment.parent_segment
    subsegment.parent_id = intended.id
    # Balances the decrement Subsegment.close() applies, so a segment still waiting for other
    # subsegments is not emitted early, and is never sent without them.
    segment.increment()
    if subsegment.sampled:
        with _detached_lock:
            _detached.setdefault(segment, []).append(subsegment)
    log.warning('Subsegment %r began after segment %r ended; it will be sent on its own under parent %s.',
                subsegment.name, segment.name, intended.id)
    _flag_late(subsegment, note)


def _flag_late(subsegment, note: dict) -> None:
    subsegment.add_error_flag()
    subsegment.put_metadata(LATE_METADATA_KEY, note, LATE_METADATA_NAMESPACE)


def _subtree_closed(entity) -> bool:
    return not entity.in_progress and all(_subtree_closed(child) for child in list(entity.subsegments))


def flush_detached_subsegments(segment, send: Callable[[Any], None]) -> None:
    """Send, through ``send``, every late subsegment of ``segment`` whose subtree is now closed.

    The recorder calls this whenever a subsegment ends. It is a no-op (one length check) unless a
    subsegment began after its whole ancestry had ended.
    """
    if not _detached:
        return
    with _detached_lock:
        pending = _detached.get(segment)
        if not pending:
            return
        ready = [sub for sub in pending if _subtree_closed(sub)]
        if not ready:
            return
        remaining = [sub for sub in pending if not any(sub is done for done in ready)]
        if remaining:
            _detached[segment] = remaining
        else:
            del _detached[segment]
    for sub in ready:
        try:
            send(sub)
        except Exception:  # noqa: BLE001 - emission must never reach the application
            log.warning('Sending late subsegment %r failed.', sub.name, exc_info=True)


class _EntitiesView:
    """``context._local.entities`` as code written against upstream's thread-local stack reads it.

    Reading returns a list copy (or None when nothing is open); assigning replaces the stack.
    """

    __slots__ = ('_var',)

    def __init__(self, var: 'ContextVar[Tuple[Any, ...]]') -> None:
        self._var = var

    @property
    def entities(self) -> Optional[List[Any]]:
        stack = self._var.get()
        if stack and stack[0].__class__ is PendingSegment:
            stack = materialized(self._var, stack)
        return list(stack) if stack else None

    @entities.setter
    def entities(self, value) -> None:
        self._var.set(tuple(value or ()))


# Methods the recorder's hot path stands in for when they are Context's own (see ``_fast``).
_HOT_METHODS = frozenset(('get_trace_entity', 'peek_trace_entity', 'put_segment', 'put_subsegment',
                          'end_subsegment_entity', 'set_trace_entity', 'clear_trace_entities'))


class Context:
    """Stack of open entities for the current thread or task.

    Args:
        context_missing: what to do when an entity is needed and none is open: ``RUNTIME_ERROR``
            (raise SegmentNotFoundException), ``LOG_ERROR`` (log, return None) or ``IGNORE_ERROR``.
            ``AWS_XRAY_CONTEXT_MISSING`` overrides it.
    """

    #: The ContextVar holding the stack, exposed to the recorder's hot path only while this
    #: context's stack methods are Context's own (not overridden by a subclass or on the instance);
    #: None otherwise, and the recorder then calls the methods.
    _fast: 'Optional[ContextVar[Tuple[Any, ...]]]' = None

    def __init__(self, context_missing: str = 'LOG_ERROR') -> None:
        self._entities: ContextVar[Tuple[Any, ...]] = ContextVar(
            'aws_like_sdk_entities_%d' % next(_context_ids), default=())
        self._local = _EntitiesView(self._entities)
        self._context_missing = 'LOG_ERROR'
        self.context_missing = os.environ.get(CXT_MISSING_STRATEGY_KEY, context_missing)
        self._refresh_fast()

    def _refresh_fast(self) -> None:
        # (Never through self.__dict__: see utils/own_methods.py.)
        plain = uses_own_methods(self, _OWN_HOT_METHODS)
        object.__setattr__(self, '_fast', stored_value(self, '_entities') if plain else None)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in _HOT_METHODS or name == '_entities':
            self._refresh_fast()

    def __delattr__(self, name: str) -> None:
        object.__delattr__(self, name)
        if name in _HOT_METHODS or name == '_entities':
            self._refresh_fast()

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
        parent = stack[-1]
        if parent.__class__ is PendingSegment:
            stack = materialized(self._entities, stack)
            parent = stack[-1]
        if parent.in_progress:
            parent.add_subsegment(subsegment)
        else:
            _adopt_late_subsegment(stack, subsegment)
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
            entity = stack[-1]
            if entity.__class__ is PendingSegment:
                entity = materialized(self._entities, stack)[-1]
            return entity
        if not global_sdk_config.sdk_enabled():
            from .models.dummy_entities import DummySegment
            return DummySegment()
        return self.handle_context_missing()

    def peek_trace_entity(self):
        """Return the current entity or None, without applying the context-missing strategy."""
        stack = self._entities.get()
        if not stack:
            return None
        entity = stack[-1]
        if entity.__class__ is PendingSegment:
            entity = materialized(self._entities, stack)[-1]
        return entity

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


# Context's own stack methods, before anyone patches the class (see Context._refresh_fast).
_OWN_HOT_METHODS = own_methods(Context, _HOT_METHODS)
