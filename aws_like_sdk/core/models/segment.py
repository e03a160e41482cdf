"""Segment: the root entity of one service's part of a trace."""
import threading
import traceback
from typing import Any, Dict, Optional

from ..exceptions.exceptions import SegmentNameMissingException
from .entity import Entity
from .traceid import new_trace_id


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

    def __init__(self, name: str, entityid: Optional[str] = None, traceid: Optional[str] = None,
                 parent_id: Optional[str] = None, sampled: bool = True) -> None:
        if not name:
            raise SegmentNameMissingException('Segment name is required.')
        super().__init__(name, entityid)
        self.trace_id = traceid or new_trace_id()
        self.parent_id = parent_id
        self.sampled = sampled
        self.user: Optional[str] = None
        self.service: Optional[Dict[str, Any]] = None
        self.origin: Optional[str] = None
        # Open and total subsegment counts share one lock: they are touched on every subsegment.
        self._counter_lock = threading.Lock()
        self._open_count = 0
        self._total_count = 0
        self._emitted = False

    @property
    def ref_counter(self) -> '_CounterView':
        """Open subsegments in this segment's tree (an AtomicCounter-like view)."""
        return _CounterView(self, '_open_count')

    @property
    def _subsegments_counter(self) -> '_CounterView':
        return _CounterView(self, '_total_count')

    def add_subsegment(self, subsegment) -> None:
        if self.sampled or not subsegment.sampled:
            # The common case of Entity.add_subsegment, inlined for the hot path.
            if not self.in_progress:
                self._check_ended()
            subsegment.parent_id = self.id
            self.subsegments.append(subsegment)
        else:
            super().add_subsegment(subsegment)
        with self._counter_lock:
            self._open_count += 1
            self._total_count += 1

    def increment(self) -> None:
        """Count one more open subsegment anywhere in this segment's tree."""
        with self._counter_lock:
            self._open_count += 1
            self._total_count += 1

    def decrement_ref_counter(self) -> None:
        with self._counter_lock:
            self._open_count -= 1

    def ready_to_send(self) -> bool:
        """True once the segment is closed and no subsegment in its tree is open."""
        return not self.in_progress and self._open_count <= 0

    def get_total_subsegments_size(self) -> int:
        return self._total_count

    def decrement_subsegments_size(self) -> int:
        with self._counter_lock:
            self._total_count -= 1
            return self._total_count

    def remove_subsegment(self, subsegment) -> None:
        super().remove_subsegment(subsegment)
        self.decrement_subsegments_size()

    def set_user(self, user: str) -> None:
        """Set the indexed ``user`` field."""
        self._check_ended()
        self.user = user

    def set_service(self, service_info: Dict[str, Any]) -> None:
        self._check_ended()
        self.service = service_info

    def set_rule_name(self, rule_name: str) -> None:
        """Record which centralized sampling rule sampled this segment."""
        self.aws.setdefault('xray', {})['sampling_rule_name'] = rule_name

    def claim_emission(self) -> bool:
        """Return True exactly once, so racing threads never emit the same segment twice."""
        with self._counter_lock:
            if self._emitted:
                return False
            self._emitted = True
            return True

    def to_dict(self) -> Dict[str, Any]:
        doc = super().to_dict()
        doc['trace_id'] = self.trace_id
        if self.user:
            doc['user'] = self.user
        if self.service:
            doc['service'] = self.service
        if self.origin:
            doc['origin'] = self.origin
        return doc


class _CounterView:
    """AtomicCounter-compatible access to one of a segment's counters (kept for upstream callers)."""

    __slots__ = ('_segment', '_field')

    def __init__(self, segment: Segment, field: str) -> None:
        self._segment = segment
        self._field = field

    def increment(self, num: int = 1) -> int:
        with self._segment._counter_lock:
            value = getattr(self._segment, self._field) + num
            setattr(self._segment, self._field, value)
            return value

    def decrement(self, num: int = 1) -> int:
        return self.increment(-num)

    def get_current(self) -> int:
        return getattr(self._segment, self._field)

    def reset(self) -> int:
        with self._segment._counter_lock:
            setattr(self._segment, self._field, 0)
            return 0
