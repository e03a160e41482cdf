"""Decide when and what to stream out of a long-lived segment before it ends."""
import os
import threading
import weakref
from typing import Callable

from ..models.segment import Segment
from ..models.subsegment import Subsegment

_instances: 'weakref.WeakSet[DefaultStreaming]' = weakref.WeakSet()


def _reset_locks_in_child() -> None:
    # A lock another thread held at fork() stays held forever in the child: replace it.
    for instance in list(_instances):
        instance._lock = threading.Lock()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_reset_locks_in_child)


class DefaultStreaming:
    """Stream completed subsegment subtrees once a segment holds more than ``streaming_threshold``.

    Only subtrees whose parent is still open are streamed; a closed subtree under a closed parent
    waits for that parent, so each streamed document is as large a piece as possible.
    """

    def __init__(self, streaming_threshold: int = 30) -> None:
        self._threshold = streaming_threshold
        self._lock = threading.Lock()
        _instances.add(self)

    def is_eligible(self, segment) -> bool:
        """True for a sampled segment with more subsegments than the threshold."""
        if segment is None or not segment.sampled:
            return False
        return segment._total_count > self._threshold

    def stream(self, entity, callback: Callable) -> None:
        """Send every completed subtree under ``entity`` through ``callback`` and detach it."""
        with self._lock:
            self._stream(entity, callback)

    def _stream(self, entity, callback: Callable) -> bool:
        children = entity._subs  # not the public property, which would give every leaf an empty list
        if not children:
            return not entity.in_progress
        # Leaves (most children) are judged here rather than through a call each.
        complete = [child for child in list(children)
                    if (self._stream(child, callback) if child._subs else not child.in_progress)]
        if len(complete) == len(children) and not entity.in_progress:
            return True
        if not complete:
            return False
        cls = entity.__class__
        # remove_subsegment of Segment and Subsegment, inlined: detach, then count one less attached.
        attached = entity._attached if cls is Segment else \
            entity.parent_segment._attached if cls is Subsegment else None
        for child in complete:
            callback(child)
            if attached is None:
                entity.remove_subsegment(child)
                continue
            try:
                children.remove(child)
            except ValueError:
                pass
            try:
                attached.pop()
            except IndexError:
                pass
        return False

    @property
    def streaming_threshold(self) -> int:
        return self._threshold

    @streaming_threshold.setter
    def streaming_threshold(self, value: int) -> None:
        self._threshold = value
