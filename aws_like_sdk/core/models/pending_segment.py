"""PendingSegment: a request's segment kept as its wire document until something asks for it.

Most requests end without the application touching their segment: no subsegment, annotation or
``current_segment()`` call. For those, building a :class:`~.segment.Segment` object only to turn it
back into a dict costs more than the rest of the tracing work. A web adapter may therefore begin
a *pending* segment instead (see ``AWSXRayRecorder.begin_deferred_segment``): the document is
written once, in the shape ``Segment.to_dict`` gives, and the context holds the pending segment.

The first reader of the context that needs an entity turns it into a real ``Segment``
(:meth:`PendingSegment.materialize`), and from then on everything works on that segment as usual.
Whoever ends the request calls :meth:`PendingSegment.finish`: None means nobody asked, and the
document itself has been closed and is to be emitted. Both sides may run in different threads (a handler's
worker thread materializes while the request ends), so the choice is made by the first item
appended to one list, an atomic operation.
"""
import time
from typing import Any, Dict, Optional

from ..emitters.encoding import encode_document
from ..utils.ids import entity_id as _entity_id, take_entity_id as _take_entity_id, trace_id_at as _trace_id_at
from .entity import _clean_names, sanitize_name
from .segment import Segment

# Appended to a pending segment's claims by the request's end: the document is sent as it is.
_SENT = object()


class PendingSegment:
    """A sampled segment that exists only as its document until :meth:`materialize` is called.

    Attributes:
        document: the wire document (what ``Segment.to_dict`` would return for the same segment).
        trace_id: the trace id (also in the document), read for the response header.
        origin_trace_header: the incoming trace header, handed on to the real segment.
    """

    __slots__ = ('document', 'trace_id', 'origin_trace_header', '_claims')

    # What readers of an entity check before they touch it.
    sampled = True
    type = 'segment'

    def __init__(self, name: str, traceid: Optional[str], parent_id: Optional[str], http_block: Dict[str, Any],
                 annotations: Optional[Dict[str, Any]], aws: Optional[Dict[str, Any]],
                 service: Optional[Dict[str, Any]], origin: Optional[str] = None,
                 origin_trace_header: Any = None) -> None:
        try:
            entity_id = _take_entity_id()
        except IndexError:  # the id pool is empty: entity_id() refills it
            entity_id = _entity_id()
        start = time.time()
        self.trace_id = trace_id = traceid or _trace_id_at(start)
        # The keys Segment.to_dict writes for an open segment with these blocks (order aside).
        document = {'id': entity_id, 'name': _clean_names.get(name) or sanitize_name(name), 'start_time': start,
                    'trace_id': trace_id, 'in_progress': True, 'http': http_block}
        if parent_id:
            document['parent_id'] = parent_id
        if annotations:
            document['annotations'] = annotations
        if aws:
            document['aws'] = aws
        if service:
            document['service'] = service
        if origin:
            document['origin'] = origin
        self.document = document
        self.origin_trace_header = origin_trace_header
        self._claims: list = []

    @property
    def id(self) -> str:
        return self.document['id']

    @property
    def name(self) -> str:
        return self.document['name']

    @property
    def in_progress(self) -> bool:
        return self.document['in_progress']

    def to_dict(self) -> Dict[str, Any]:
        """The document (for an emitter: this object stands in for the segment it describes)."""
        return self.document

    def serialize(self) -> str:
        """The document as compact JSON, as ``Entity.serialize`` gives it."""
        return encode_document(self.document).decode('utf-8')

    def materialize(self) -> Segment:
        """The real segment for this request, built on first call; the same object for every caller.

        Asked after the request has ended and its document was sent, it returns a closed segment
        that is never sent again (as an eagerly built segment would be by then).
        """
        claims = self._claims
        for item in claims:
            if item is not _SENT:
                return item
        document = self.document
        segment = Segment(document['name'], document['id'], self.trace_id, document.get('parent_id'))
        segment.start_time = document['start_time']
        segment.origin = document.get('origin')
        # The runtime blocks stay shared with the recorder's until changed (as in begin_segment).
        segment._aws = document.get('aws')
        segment._service = document.get('service')
        segment._http = document['http']
        annotations = document.get('annotations')
        if annotations:
            segment._annotations = annotations
        segment._has_blocks = True
        segment._origin_trace_header = self.origin_trace_header
        claims.append(segment)
        if claims[0] is _SENT:
            # The request ended first (before or while this segment was built): close it, and
            # take its emission token so it is never sent a second time.
            segment.end_time = document.get('end_time') or time.time()
            segment.in_progress = False
            del segment._emission_token[:]
        for item in claims:
            if item is not _SENT:
                return item
        return segment  # not reached: the segment itself was appended

    def finish(self, status: int, content_length: Optional[int], end_time: float) -> Optional[Segment]:
        """Called once, by the request's end: close the document with the response's int status and
        length, as the segment would be closed, and return None for the caller to send it.

        When :meth:`materialize` came first, change nothing and return that segment: the caller
        then ends the real segment instead.
        """
        claims = self._claims
        claims.append(_SENT)
        winner = claims[0]
        if winner is not _SENT:
            return winner
        document = self.document
        response: Dict[str, Any] = {'status': status}
        if content_length is not None:
            response['content_length'] = content_length
        document['http']['response'] = response
        if status >= 400:
            # Entity.apply_status_code's flags.
            if status >= 500:
                document['fault'] = True
            elif status == 429:
                document['error'] = document['throttle'] = True
            else:
                document['error'] = True
        document['end_time'] = end_time
        document['in_progress'] = False
        return None
