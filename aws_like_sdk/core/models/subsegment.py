"""Subsegment: a unit of work inside a segment, plus its context manager / decorator."""
import inspect
import time
import traceback
from typing import Any, Dict, Optional

import wrapt

from ..exceptions.exceptions import SegmentNotFoundException
from ..utils.ids import entity_id as _entity_id, take_entity_id as _take_entity_id
from .entity import Entity, _clean_names, sanitize_name

SUBSEGMENT_RECORDING_ATTRIBUTE = '_self___SUBSEGMENT_RECORDING_ATTRIBUTE__'


def _is_coroutine_function(func: Any) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, '__wrapped__', None))


def set_as_recording(decorated_func, wrapped) -> None:
    """Mark ``decorated_func`` so re-wrapping the same callable does not record twice."""
    try:
        setattr(decorated_func, SUBSEGMENT_RECORDING_ATTRIBUTE, getattr(wrapped, '__name__', None))
    except (AttributeError, TypeError):
        pass


def is_already_recording(func) -> bool:
    """True for callables that are already wrapped by a capture decorator."""
    return getattr(func, SUBSEGMENT_RECORDING_ATTRIBUTE, None) is not None


def subsegment_decorator(wrapped, instance, args, kwargs):
    """Decorator body for SubsegmentContextManager; kept for upstream compatibility."""
    return wrapped(*args, **kwargs)


class SubsegmentContextManager:
    """Context manager and decorator that records a subsegment.

    Used as a decorator it records one subsegment per call (named after the function when no name
    is given). Applied to an ``async def`` it awaits the coroutine inside the subsegment, so the
    recorded duration is the real one.
    """

    def __init__(self, recorder, name: Optional[str] = None, **subsegment_kwargs: Any) -> None:
        self.recorder = recorder
        self.name = name
        self.subsegment_kwargs = subsegment_kwargs
        self.subsegment = None

    def __call__(self, wrapped):
        if is_already_recording(wrapped):
            return wrapped
        name = self.name or getattr(wrapped, '__name__', None) or 'function'
        recorder = self.recorder
        namespace = self.subsegment_kwargs.get('namespace', 'local')

        from .. import _recording  # imported here: _recording builds on this module
        if isinstance(wrapped, (classmethod, staticmethod)) or not callable(wrapped):
            # Descriptors applied under the decorator need wrapt's binding logic.
            decorated = self._wrapt_decorated(wrapped, name, namespace)
        elif _is_coroutine_function(wrapped):
            decorated = _recording.capture_async(recorder, wrapped, name, namespace)
        else:
            # A plain closure rather than a wrapt wrapper: this runs on every captured call, and a
            # closure costs a fraction of a FunctionWrapper call. Methods bind as usual.
            decorated = _recording.capture_sync(recorder, wrapped, name, namespace)
        set_as_recording(decorated, wrapped)
        return decorated

    def _wrapt_decorated(self, wrapped, name: str, namespace: str):
        recorder = self.recorder

        @wrapt.decorator
        def wrapper(wrapped, instance, args, kwargs):
            return recorder.record_subsegment(wrapped, instance, args, kwargs, name, namespace, None)
        return wrapper(wrapped)

    def __enter__(self):
        self.subsegment = self.recorder.begin_subsegment(name=self.name, **self.subsegment_kwargs)
        return self.subsegment

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        subsegment = self.subsegment
        if subsegment is None:
            return
        if exc_type is not None and subsegment.in_progress:
            subsegment.add_exception(exc_val, traceback.extract_tb(exc_tb, limit=self.recorder.max_trace_back))
        self.recorder.end_subsegment_by_handle(subsegment)


class Subsegment(Entity):
    """A subsegment of ``segment``; closing it releases one reference on the segment."""

    type = 'subsegment'
    _sql: Optional[Dict[str, Any]] = None

    def __init__(self, name: str, namespace: str, segment) -> None:
        if not segment:
            raise SegmentNotFoundException('A parent segment is required for creating subsegments.')
        # Entity.__init__ inlined: this runs for every captured call. Fields read on every
        # subsegment are written here (an instance attribute reads faster than a class-level
        # default); the rest (http, annotations, ..., parent_id, end_time) stay shared defaults.
        try:
            self.id = _take_entity_id()
        except IndexError:  # the id pool is empty: entity_id() refills it
            self.id = _entity_id()
        self.name = _clean_names.get(name) or sanitize_name(name)
        self.start_time = time.time()
        self.parent_segment = segment
        self.trace_id = segment.trace_id
        self.namespace = namespace
        self.in_progress = True
        self._subs = self._sql = None
        self._has_blocks = self.error = self.fault = self.throttle = False

    @property
    def sql(self) -> Dict[str, Any]:
        """The ``sql`` block (a plain dict, created on first use)."""
        sql = self._sql
        if sql is None:
            sql = self._sql = {}
        return sql

    @sql.setter
    def sql(self, value: Dict[str, Any]) -> None:
        self._sql = value

    def add_subsegment(self, subsegment) -> None:
        super().add_subsegment(subsegment)
        self.parent_segment.increment()

    def remove_subsegment(self, subsegment) -> None:
        super().remove_subsegment(subsegment)
        self.parent_segment.decrement_subsegments_size()

    def close(self, end_time: Optional[float] = None) -> None:
        if not self.in_progress:
            self._check_ended()
        self.end_time = end_time if end_time is not None else time.time()
        self.in_progress = False
        try:
            self.parent_segment._open.pop()
        except IndexError:  # closed without ever being counted (never added to a tree)
            pass
        except AttributeError:  # a parent_segment that is not a Segment (set by hand)
            self.parent_segment.decrement_ref_counter()

    def set_sql(self, sql: Dict[str, Any]) -> None:
        """Set the ``sql`` block (url, database_type, sanitized_query, ...)."""
        if not self.in_progress:
            self._check_ended()
        self._sql = sql

    def to_dict(self) -> Dict[str, Any]:
        end_time = self.end_time
        parent_id = self.parent_id
        if end_time is not None and parent_id and not (self._has_blocks or self._subs or self.error or self.fault
                                                       or self.throttle or self._sql):
            # The usual subsegment (closed, attached, nothing but its identity): one dict display,
            # same keys in the same order as below.
            return {'id': self.id, 'name': self.name, 'start_time': self.start_time, 'parent_id': parent_id,
                    'in_progress': self.in_progress, 'end_time': end_time, 'trace_id': self.trace_id,
                    'type': 'subsegment', 'namespace': self.namespace}
        doc = Entity.to_dict(self)  # not super(): no proxy object per document
        doc['trace_id'] = self.trace_id
        doc['type'] = 'subsegment'
        doc['namespace'] = self.namespace
        if self._sql:
            doc['sql'] = self._sql
        return doc
