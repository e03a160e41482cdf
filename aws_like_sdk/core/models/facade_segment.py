"""FacadeSegment: stands for the segment Lambda itself records; it can only parent subsegments."""
from typing import Optional

from ..exceptions.exceptions import FacadeSegmentMutationException
from .segment import Segment

MUTATION_UNSUPPORTED_MESSAGE = 'FacadeSegments cannot be mutated.'


class FacadeSegment(Segment):
    """Read-only stand-in for the Lambda-owned segment; ids come from ``_X_AMZN_TRACE_ID``."""

    def __init__(self, name: str, entityid: Optional[str], traceid: Optional[str], sampled) -> None:
        self.initializing = self._is_initializing(entityid, traceid, sampled)
        super().__init__(name, entityid=entityid, traceid=traceid, sampled=sampled)

    @staticmethod
    def _is_initializing(entityid, traceid, sampled) -> bool:
        return not entityid or not traceid or sampled is None

    def _refuse(self, *args, **kwargs):
        raise FacadeSegmentMutationException(MUTATION_UNSUPPORTED_MESSAGE)

    close = put_http_meta = put_annotation = put_metadata = set_aws = set_user = set_service = _refuse
    add_throttle_flag = add_fault_flag = add_error_flag = apply_status_code = add_exception = _refuse
    set_rule_name = save_origin_trace_header = serialize = _refuse

    def ready_to_send(self) -> bool:
        """Never: Lambda sends its own segment."""
        return False
