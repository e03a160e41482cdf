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
from .entity import _clean_names, sanitize_name, status_flags
from .segment import Segment

class _Finished:
    """Appended to a pending segment's claims by a call that ends the request (one per call, so the
    first of two racing calls can tell it came first)."""

    __slots__ = ()


def _first_closed(claims: list) -> Optional[Segment]:
    """The first closed segment in ``claims`` (segments built after the request had ended)."""
    for item in claims:
        if item.__class__ is not _Finished and not item.in_progress:
            return item
    return None


class PendingSegment:
    """A sampled segment that exists only as its document until :meth:`materialize` is called.

    Attributes:
        document: the wire document (what ``Segment.to_dict`` would return for the same segment).
        trace_id: the trace id (also in the document), read for the response header.
        origin_trace_header: the incoming trace header, handed on to the real segment.
        emitter: the emitter that accepted the document when the request began, given by the
            recorder (the model never calls it).
    """

    __slots__ = ('document', 'trace_id', 'origin_trace_header', 'emitter', '_claims')

    # What readers of an entity check before they touch it.
    sampled = True
    type = 'segment'

    def __init__(self, name: str, traceid: Optional[str], parent_id: Optional[str], http_block: Dict[str, Any],
                 annotations: Optional[Dict[str, Any]], aws: Optional[Dict[str, Any]],
                 service: Optional[Dict[str, Any]], origin: Optional[str] = None,
                 origin_trace_header: Any = None, emitter: Any = None) -> None:
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
        self.emitter = emitter
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
        """The document (for an emitter: this object stands in for the segment it describes).

        A new top-level dict each call, as ``Entity.to_dict`` gives: emitters may shrink or split
        what they get, and a late :meth:`materialize` still reads the document.
        """
        return self.document.copy()

    def serialize(self) -> str:
        """The document as compact JSON, as ``Entity.serialize`` gives it."""
        return encode_document(self.document).decode('utf-8')

    def materialize(self) -> Segment:
        """The real segment for this request, built on first call; the same object for every caller.

        Asked after the request has ended and its document was sent, it returns a closed segment
        that is never sent again, as an eagerly built segment would be by then; work begun under it
        is sent on its own.
        """
        claims = self._claims
        if claims:
            first = claims[0]
            if first.__class__ is not _Finished:
                return first  # the live segment
            closed = _first_closed(claims)
            if closed is not None:
                return closed
        segment = self._build()
        if claims and claims[0].__class__ is _Finished:
            self._close_late(segment)  # before anyone can see it
        claims.append(segment)
        first = claims[0]
        if first.__class__ is not _Finished:
            return first  # ours, or one another thread appended first
        # The request ended first (finish appended its marker before this segment): a segment
        # appended open after the marker is never handed out open, so close it now.
        if segment.in_progress:
            self._close_late(segment)
        return _first_closed(claims) or segment

    def _build(self) -> Segment:
        document = self.document
        name = document['name']
        # (A name that sanitised to nothing is kept as it is, as an eagerly built segment keeps it.)
        segment = Segment(name or '-', document['id'], self.trace_id, document.get('parent_id'))
        if not name:
            segment.name = name
        segment.start_time = document['start_time']
        segment.origin = document.get('origin')
        # The runtime blocks stay shared with the recorder's until changed (as in begin_segment).
        segment._aws = document.get('aws')
        segment._service = document.get('service')
        segment._http = document.get('http') or {}
        annotations = document.get('annotations')
        if annotations:
            segment._annotations = annotations
        segment._has_blocks = True
        segment._origin_trace_header = self.origin_trace_header
        return segment

    def _close_late(self, segment: Segment) -> None:
        # What the sent document says (as far as finish has written it), without sending it again.
        document = self.document
        segment.end_time = document.get('end_time') or time.time()
        segment.error = document.get('error', False)
        segment.fault = document.get('fault', False)
        segment.throttle = document.get('throttle', False)
        del segment._emission_token[:]
        segment.in_progress = False  # last: readers take a late segment once it is closed

    def finish(self, status: int, content_length: Optional[int], end_time: float) -> Optional[Segment]:
        """Called by the request's end: close the document with the response's int status and
        length, as the segment would be closed, and return None for the caller to send it.

        When :meth:`materialize` came first, return that segment instead: the caller then ends the
        real segment. Called again (or twice at once), only the first call returns None; the others
        get a closed segment, and nothing more is sent.
        """
        claims = self._claims
        if not claims:
            # The document is complete before the claim, so whoever builds a segment from it after
            # the claim sees the outcome; a segment built before the claim shares the http block,
            # and the response is written into it as the eager path would write it.
            document = self.document
            blocks = document['http']
            response = blocks.get('response')
            if response is None:
                response = blocks['response'] = {}
            response['status'] = status
            if content_length is not None:
                response['content_length'] = content_length
            if status >= 400:
                for flag in status_flags(status):
                    document[flag] = True
            document['end_time'] = end_time
            document['in_progress'] = False
            marker = _Finished()
            claims.append(marker)
            if claims[0] is marker:
                return None
        # Materialized first (the live segment), or ended already (a closed copy).
        first = claims[0]
        return first if first.__class__ is not _Finished else self.materialize()
