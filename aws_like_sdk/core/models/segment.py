"""Segment: the root entity of one service's part of a trace."""
import time
import traceback
from typing import Any, Dict, Optional

from ..exceptions.exceptions import SegmentNameMissingException
from ..utils.ids import entity_id as _entity_id, take_entity_id as _take_entity_id, trace_id_at as _trace_id_at
from .entity import Entity, _clean_names, sanitize_name


class SegmentContextManager:
    """``with recorder.in_segment(name):`` begins a segment, records an escaping exception, ends it."""

    def __init__(self, recorder, name: Optional[str] = None, **segment_kwargs: Any) -> None:
        self.recorder = recorder
        self.name = name
        self.segment_kwargs = segment_kwargs
        self.segment = None

    def __enter__(self):
        self.segment = self.recorder.begin_segment(name=self.name, **self.segment_kwargs)
        return self.segment

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        segment = self.segment
        if segment is None:
            return
        if exc_type is not None and segment.in_progress:
            segment.add_exception(exc_val, traceback.extract_tb(exc_tb, limit=self.recorder.max_trace_back))
        # End the segment this block began, even if code inside began another one.
        self.recorder.end_segment_by_handle(segment)


class Segment(Entity):
    """A segment. Counts open subsegments so it is emitted only once the whole tree is closed."""

    user: Optional[str] = None
    origin: Optional[str] = None
    # The ``service`` block. The recorder hands every segment the same runtime-description dict; it
    # is copied the first time anyone reads or replaces it through ``service``. The ``aws`` block
    # works the same way. Both start out as shared (the setters say otherwise), so the recorder
    # need not mark each new segment: copying a block the segment owns anyway only costs one copy.
    _service: Optional[Dict[str, Any]] = None
    _service_shared = True
    _aws_shared = True

    def __init__(self, name: str, entityid: Optional[str] = None, traceid: Optional[str] = None,
                 parent_id: Optional[str] = None, sampled: bool = True) -> None:
        if not name:
            raise SegmentNameMissingException('Segment name is required.')
        try:
            self.id = entityid or _take_entity_id()
        except IndexError:  # the id pool is empty: entity_id() refills it
            self.id = _entity_id()
        self.name = _clean_names.get(name) or sanitize_name(name)
        self.start_time = now = time.time()
        # One clock read serves both the start time and the epoch part of a new trace id.
        self.trace_id = traceid or _trace_id_at(now)
        # Read for every subsegment or document: instance attributes read faster than class defaults.
        self.parent_id = parent_id
        self.sampled = sampled
        self.in_progress = True
        self._has_blocks = self.error = self.fault = self.throttle = False
        self.user = self.origin = self._service = None
        self._subs = []
        # Counters kept as lists: append and pop are atomic, so the per-subsegment bookkeeping needs
        # no lock. One item per subsegment open (``_open``) or attached (``_attached``) in the tree.
        self._open: list = []
        self._attached: list = []
        # One token, popped by whoever emits the segment (list.pop is atomic: exactly one winner).
        self._emission_token: list = [None]

    @property
    def service(self) -> Optional[Dict[str, Any]]:
        value = self._service
        if self._service_shared:
            value = self._service = dict(value) if value is not None else None
            self._service_shared = False
        return value

    @service.setter
    def service(self, value: Optional[Dict[str, Any]]) -> None:
        self._service = value
        self._service_shared = False

    @property
    def _open_count(self) -> int:
        return len(self._open)

    @property
    def _total_count(self) -> int:
        return len(self._attached)

    @property
    def ref_counter(self) -> '_CounterView':
        """Open subsegments in this segment's tree (an AtomicCounter-like view)."""
        return _CounterView(self._open)

    @property
    def _subsegments_counter(self) -> '_CounterView':
        return _CounterView(self._attached)

    def add_subsegment(self, subsegment) -> None:
        if self.sampled or not subsegment.sampled:
            # The common case of Entity.add_subsegment, inlined for the hot path.
            if not self.in_progress:
                self._check_ended()
            subsegment.parent_id = self.id
            self._subs.append(subsegment)
        else:
            super().add_subsegment(subsegment)
        self._open.append(None)
        self._attached.append(None)

    def increment(self) -> None:
        """Count one more open subsegment anywhere in this segment's tree."""
        self._open.append(None)
        self._attached.append(None)

    def decrement_ref_counter(self) -> None:
        """Count one open subsegment less (never below zero)."""
        try:
            self._open.pop()
        except IndexError:
            pass

    def ready_to_send(self) -> bool:
        """True once the segment is closed and no subsegment in its tree is open."""
        return not self.in_progress and not self._open

    def get_total_subsegments_size(self) -> int:
        return len(self._attached)

    def decrement_subsegments_size(self) -> int:
        try:
            self._attached.pop()
        except IndexError:
            pass
        return len(self._attached)

    def remove_subsegment(self, subsegment) -> None:
        super().remove_subsegment(subsegment)
        self.decrement_subsegments_size()

    def set_user(self, user: str) -> None:
        """Set the indexed ``user`` field."""
        if not self.in_progress:
            self._check_ended()
        self.user = user

    def set_service(self, service_info: Dict[str, Any]) -> None:
        if not self.in_progress:
            self._check_ended()
        self.service = service_info

    def set_rule_name(self, rule_name: str) -> None:
        """Record which centralized sampling rule sampled this segment."""
        self.aws.setdefault('xray', {})['sampling_rule_name'] = rule_name

    def claim_emission(self) -> bool:
        """Return True exactly once, so racing threads never emit the same segment twice."""
        try:
            self._emission_token.pop()
        except IndexError:
            return False
        return True

    def to_dict(self) -> Dict[str, Any]:
        doc = Entity.to_dict(self)  # not super(): no proxy object per document
        doc['trace_id'] = self.trace_id
        if self.user:
            doc['user'] = self.user
        service = self._service
        if service:
            doc['service'] = service
        if self.origin:
            doc['origin'] = self.origin
        return doc


class _CounterView:
    """AtomicCounter-compatible access to one of a segment's counters (kept for upstream callers).

    Counts never go below zero.
    """

    __slots__ = ('_items',)

    def __init__(self, items: list) -> None:
        self._items = items

    def increment(self, num: int = 1) -> int:
        items = self._items
        if num >= 0:
            items.extend([None] * num)
        else:
            for _ in range(-num):
                try:
                    items.pop()
                except IndexError:
                    break
        return len(items)

    def decrement(self, num: int = 1) -> int:
        return self.increment(-num)

    def get_current(self) -> int:
        return len(self._items)

    def reset(self) -> int:
        self._items.clear()
        return 0
