"""Forward to an OpenTelemetry Collector (or any OTLP/HTTP receiver) as trace spans."""
import collections
import logging
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

from ..documents import Document
from ..stats import Counters
from .base import Forwarder, PermanentError, RetryableError
from .otlp_convert import Span, document_to_spans, group_by_service
from .otlp_encode import encode_json, encode_protobuf

log = logging.getLogger(__name__)

_RETRYABLE_STATUS = {429, 502, 503, 504}  # the OTLP/HTTP specification's list
_REMEMBERED_TRACES = 10000


class OTLPForwarder(Forwarder):
    """POSTs ExportTraceServiceRequest batches to ``url``.

    Args:
        counters: where ``forward.otlp.*`` counts go.
        url: the traces endpoint, e.g. ``http://127.0.0.1:4318/v1/traces``.
        encoding: ``protobuf`` (default) or ``json``.
        headers: extra request headers, e.g. an authorization token.
    """

    def __init__(self, counters: Counters, url: str, encoding: str = 'protobuf',
                 headers: Optional[Dict[str, str]] = None, timeout: float = 10.0, **kwargs: Any) -> None:
        super().__init__('otlp', counters, batch_size=kwargs.pop('batch_size', 100), **kwargs)
        if encoding not in ('protobuf', 'json'):
            raise ValueError('OTLP encoding must be protobuf or json')
        self.url = url
        self._encoding = encoding
        self._headers = dict(headers or {})
        self._timeout = timeout
        # Streamed subsegments arrive without their segment's name; remember it per trace.
        self._services: 'collections.OrderedDict[str, str]' = collections.OrderedDict()

    def convert(self, raw: bytes, document: Optional[Document]) -> Optional[Tuple[str, List[Span]]]:
        """Spans of one parsed document, with the service they belong to."""
        if document is None:
            return None
        spans = document_to_spans(document.body)
        if document.type == 'segment':
            service = document.name
            self._services[document.trace_id] = service
            self._services.move_to_end(document.trace_id)
            if len(self._services) > _REMEMBERED_TRACES:
                self._services.popitem(last=False)
        else:
            service = self._services.get(document.trace_id, 'unknown_service')
        return (service, spans) if spans else None

    def send(self, batch: List[Tuple[str, List[Span]]]) -> int:
        """One POST per batch; 429/502/503/504 and network errors are retried."""
        resources = group_by_service(batch)
        if self._encoding == 'json':
            body, content_type = encode_json(resources), 'application/json'
        else:
            body, content_type = encode_protobuf(resources), 'application/x-protobuf'
        headers = dict(self._headers, **{'Content-Type': content_type})
        request = urllib.request.Request(self.url, data=body, headers=headers, method='POST')
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            if exc.code in _RETRYABLE_STATUS:
                raise RetryableError('HTTP %d from %s' % (exc.code, self.url)) from None
            raise PermanentError('HTTP %d from %s' % (exc.code, self.url)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise RetryableError('%s: %s' % (self.url, exc)) from None
        return 0
