"""Stand-ins for unsampled work: the full API, nothing recorded or sent."""
import os
from typing import Any, Optional

from .noop_traceid import NOOP_ENTITY_ID, NOOP_TRACE_ID
from .segment import Segment
from .subsegment import Subsegment
from .traceid import new_trace_id


def _noop_ids_enabled() -> bool:
    return os.environ.get('AWS_XRAY_NOOP_ID', '').lower() != 'false'


class _NoRecording:
    """Data mutators that do nothing; shared by both dummy classes."""

    def set_aws(self, aws_meta) -> None:
        pass

    def put_http_meta(self, key: str, value: Any) -> None:
        pass

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = 'default') -> None:
        pass

    def apply_status_code(self, status_code: Any) -> None:
        pass

    def add_exception(self, exception: BaseException, stack, remote: bool = False) -> None:
        pass

    def serialize(self) -> Optional[str]:
        return None


class DummySegment(_NoRecording, Segment):
    """An unsampled segment. It keeps the stack and reference counts working but records nothing."""

    def __init__(self, name: str = 'dummy') -> None:
        if _noop_ids_enabled():
            super().__init__(name, entityid=NOOP_ENTITY_ID, traceid=NOOP_TRACE_ID, sampled=False)
        else:
            super().__init__(name, traceid=new_trace_id(), sampled=False)

    def set_user(self, user: str) -> None:
        pass

    def set_service(self, service_info) -> None:
        pass

    def set_rule_name(self, rule_name: str) -> None:
        pass


class DummySubsegment(_NoRecording, Subsegment):
    """An unsampled subsegment (namespace ``dummy``)."""

    def __init__(self, segment, name: str = 'dummy') -> None:
        super().__init__(name, 'dummy', segment)
        self.sampled = False
        if _noop_ids_enabled():
            self.id = NOOP_ENTITY_ID
            self.trace_id = NOOP_TRACE_ID

    def set_sql(self, sql) -> None:
        pass
