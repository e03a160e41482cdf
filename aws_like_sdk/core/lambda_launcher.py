"""Lambda support: a context whose root is a facade for the segment Lambda records itself.

Unlike upstream, nothing is written to the filesystem: detection only reads environment variables.
"""
import logging
import os
from typing import Optional

from .. import global_sdk_config
from .context import Context, _adopt_late_subsegment, _is_subsegment
from .models.dummy_entities import DummySegment
from .models.facade_segment import FacadeSegment
from .models.trace_header import TraceHeader

log = logging.getLogger(__name__)

LAMBDA_TRACE_HEADER_KEY = '_X_AMZN_TRACE_ID'
LAMBDA_TASK_ROOT_KEY = 'LAMBDA_TASK_ROOT'
# Upstream touched this file at start-up; the names stay importable but nothing is written.
TOUCH_FILE_DIR = '/tmp/.aws-xray/'
TOUCH_FILE_PATH = '/tmp/.aws-xray/initialized'


def check_in_lambda() -> Optional['LambdaContext']:
    """Return a LambdaContext when running inside AWS Lambda, else None."""
    if not os.environ.get(LAMBDA_TASK_ROOT_KEY):
        return None
    return LambdaContext()


class LambdaContext(Context):
    """Context for Lambda: segments cannot be created; subsegments hang off a facade segment
    rebuilt whenever ``_X_AMZN_TRACE_ID`` names a new trace (one per invocation)."""

    def __init__(self) -> None:
        super().__init__()
        self._header_seen: Optional[str] = None

    def put_segment(self, segment) -> None:
        log.warning('Cannot create segments inside Lambda function. Discarded.')

    def end_segment(self, end_time=None) -> None:
        log.warning('Cannot end segment inside Lambda function. Ignored.')

    def put_subsegment(self, subsegment) -> None:
        entity = self.get_trace_entity()
        if entity is None:
            return
        facade = entity.parent_segment if _is_subsegment(entity) else entity
        if getattr(facade, 'initializing', False) or (isinstance(facade, DummySegment) and not self._header_seen):
            log.warning('Subsegment %s discarded due to Lambda worker still initializing.', subsegment.name)
            return
        if entity.in_progress:
            entity.add_subsegment(subsegment)
        else:  # work that outlived its parent subsegment: never raise into the handler
            _adopt_late_subsegment(self._entities.get(), subsegment)
        self._entities.set(self._entities.get() + (subsegment,))

    def set_trace_entity(self, trace_entity) -> None:
        self._refresh()
        super().set_trace_entity(trace_entity)

    def get_trace_entity(self):
        self._refresh()
        return super().get_trace_entity()

    def peek_trace_entity(self):
        self._refresh()
        return super().peek_trace_entity()

    def handle_context_missing(self):
        return None

    @property
    def context_missing(self):
        return None

    @context_missing.setter
    def context_missing(self, value) -> None:
        pass

    def _refresh(self) -> None:
        header_str = os.environ.get(LAMBDA_TRACE_HEADER_KEY)
        stack = self._entities.get()
        if stack and header_str == self._header_seen:
            return
        header = TraceHeader.from_header_str(header_str)
        current = stack[0] if stack else None
        if current is not None and header.root and getattr(current, 'trace_id', None) == header.root:
            self._header_seen = header_str
            return
        self._header_seen = header_str
        sampled = header.sampled if global_sdk_config.sdk_enabled() else 0
        if not header.root or not header.parent or sampled is None:
            facade = DummySegment()
        else:
            facade = FacadeSegment('facade', entityid=header.parent, traceid=header.root,
                                   sampled=bool(sampled == 1))
        self._entities.set((facade,))
