"""THE request-to-segment helper. Every web integration (Django, Flask, WSGI, ASGI, aiohttp) builds
an :class:`IncomingRequest` from its framework's request and calls :func:`begin_request` (or passes
the same fields straight to :func:`begin_request_for`), keeps the returned :class:`RequestTrace`
handle, and calls :meth:`RequestTrace.finish` with the outcome.

This module owns: reading the trace header, the segment name (service or dynamic naming), the
sampling decision, segment-or-Lambda-subsegment, the request fields of the ``http`` block, optional
URL annotations, route grouping, status flags, content length, exceptions and the response header.
It never raises into the application: a failure inside it is logged once and the request proceeds.
"""
import logging
import re
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ..core.lambda_launcher import LambdaContext
from ..core.models import http
from ..core.models.pending_segment import PendingSegment
from ..core.models.trace_header import NO_TRACE_HEADER, TraceHeader
from ._patching import log_once
from .util import calculate_sampling_decision, calculate_segment_name, prepare_response_header, strip_url

log = logging.getLogger(__name__)

ROUTE_ANNOTATION = 'http_route'

# The header as X-Ray SDKs, load balancers and API Gateway write it: lower-case ids in this order and
# nothing else. It is parsed with one match; anything else takes the tolerant parser.
_CANONICAL_TRACE_HEADER = re.compile(
    r'Root=(1-[0-9a-f]{8}-[0-9a-f]{24})(?:;Parent=([0-9a-f]{16}))?(?:;Sampled=([01?]))?\Z')


def parse_trace_header(value: Any) -> TraceHeader:
    """Parse a raw ``X-Amzn-Trace-Id`` value exactly as ``TraceHeader.from_header_str`` does, faster
    for the canonical form."""
    if not value:
        return TraceHeader()
    if value.__class__ is str:
        match = _CANONICAL_TRACE_HEADER.match(value)
        if match is not None:
            root, parent, sampled = match.groups()
            return TraceHeader(root, parent, sampled)
    return TraceHeader.from_header_str(value)


# One request object per request: without a __dict__ it is one allocation, not two (Python 3.10+).
@dataclass(**({'slots': True} if sys.version_info >= (3, 10) else {}))
class IncomingRequest:
    """A framework-neutral view of an incoming HTTP request.

    Attributes:
        method: HTTP method.
        url: full request URL; the query string is never recorded.
        host: the Host header (may include a port), used for dynamic naming and sampling.
        path: URL path, for sampling rules.
        trace_header: raw ``X-Amzn-Trace-Id`` value, if any.
        user_agent: ``User-Agent`` header.
        client_ip: the peer address of the connection.
        x_forwarded_for: raw ``X-Forwarded-For`` header; when present its first address is the client.
        route: the matched route template (e.g. ``/users/<id>``) when already known.
        name: a fixed segment name chosen by the integration; overrides service and dynamic naming.
    """

    method: str
    url: str
    host: Optional[str] = None
    path: Optional[str] = None
    trace_header: Optional[str] = None
    user_agent: Optional[str] = None
    client_ip: Optional[str] = None
    x_forwarded_for: Optional[str] = None
    route: Optional[str] = None
    name: Optional[str] = None


class ResponseOutcome:
    """The response as the server saw it: status, declared length, and bytes actually produced.

    Filled in by adapters that see the response in pieces (WSGI ``start_response`` and body, ASGI
    messages) before they call :meth:`RequestTrace.finish`.
    """

    __slots__ = ('status', 'content_length', 'body_bytes')

    def __init__(self) -> None:
        self.status: Optional[int] = None
        self.content_length: Optional[str] = None
        self.body_bytes = 0


def innermost_frames(exception: BaseException, limit: int) -> Any:
    """The last ``limit`` frames of ``exception``'s traceback.

    The innermost frames say where it failed; a framework's and server's outer frames do not.
    """
    if not limit:
        return []
    return traceback.extract_tb(exception.__traceback__, limit=-limit)


class RequestTrace:
    """Handle on the segment (or Lambda subsegment) opened for one request; ends exactly that entity.

    Attributes:
        header: the ``X-Amzn-Trace-Id`` value to send back (None when nothing is traced). It is
            fixed once the segment exists, so it is computed with it and adapters read it as a
            plain attribute.
    """

    __slots__ = ('recorder', 'entity', 'trace_header', 'is_subsegment', 'annotate_urls', '_finished', 'header',
                 '_deferred_route')

    def __init__(self, recorder: Any, entity: Any, trace_header: TraceHeader, is_subsegment: bool,
                 annotate_urls: bool, header: Optional[str] = None, deferred_route: Optional[str] = None) -> None:
        self.recorder = recorder
        self.entity = entity
        self.trace_header = trace_header
        self.is_subsegment = is_subsegment
        self.annotate_urls = annotate_urls
        self._finished = False
        self.header = header
        # The route of a deferred segment (see begin_request_for).
        self._deferred_route = deferred_route

    @property
    def segment(self) -> Any:
        entity = self.entity
        if entity.__class__ is PendingSegment:
            entity = self.entity = entity.materialize()
        return entity.parent_segment if self.is_subsegment and entity is not None else entity

    def response_header(self) -> Optional[str]:
        """The ``X-Amzn-Trace-Id`` value to send back, or None when nothing is traced."""
        return self.header

    def set_route(self, route: Optional[str]) -> None:
        """Record the matched route template so traces group by route as well as by URL."""
        entity = self.entity
        if route and entity.__class__ is PendingSegment:
            entity = self.entity = entity.materialize()
        if route and entity is not None and entity.sampled and entity.in_progress:
            # What put_annotation would store: the key is valid and the value a str.
            entity.annotations[ROUTE_ANNOTATION] = route if route.__class__ is str else str(route)

    def finish(self, status: Optional[int] = None, content_length: Any = None,
               exception: Optional[BaseException] = None, stack: Any = None, route: Optional[str] = None) -> None:
        """Record the outcome and end the entity this handle opened (once; later calls do nothing).

        Args:
            status: response status; defaults to 500 when ``exception`` is given.
            content_length: response ``Content-Length`` if known.
            exception: an exception that escaped the application (recorded with its stack).
            stack: frames for ``exception``; taken from its traceback when omitted.
            route: matched route template, if it became known only after routing.
        """
        if self._finished:
            return
        self._finished = True
        entity = self.entity
        if entity is None:
            return
        if entity.__class__ is PendingSegment:
            try:
                if exception is None and not route and status.__class__ is int and (
                        content_length is None or content_length.__class__ is int):
                    # Usually nothing asked for the segment, and its document is finished and sent.
                    entity = self.recorder.end_deferred_segment(entity, status, content_length)
                    if entity is None:
                        return
                    # The application asked for this request's segment: on this route it probably
                    # will again, and building it at once is cheaper than building it twice over.
                    _remember_route_that_records(self._deferred_route)
                else:
                    entity = entity.materialize()
            except Exception:  # noqa: BLE001
                log_once('_http.end', 'Ending the request segment failed.')
                return
            self.entity = entity
        # An unsampled (dummy) entity records nothing: skip straight to ending it.
        if entity.sampled and entity.in_progress:
            try:
                if exception is None and not self.annotate_urls and status.__class__ is int and (
                        content_length is None or content_length.__class__ is int):
                    # The usual outcome: an int status and length. Write what put_http_meta would,
                    # without its checks (fields the application recorded itself stay).
                    blocks = entity.http
                    response = blocks.get('response')
                    if response is None:
                        response = blocks['response'] = {}
                    response[http.STATUS] = status
                    if content_length is not None:
                        response[http.CONTENT_LENGTH] = content_length
                    if status >= 400:  # below 400 there is no flag to set
                        entity.apply_status_code(status)
                else:
                    self._record_outcome(entity, status, content_length, exception, stack)
                if route:
                    self.set_route(route)
            except Exception:  # noqa: BLE001
                log_once('_http.finish', 'Recording the response on the request segment failed.')
        try:
            if self.is_subsegment:
                self.recorder.end_subsegment_by_handle(entity)
            else:
                self.recorder.end_segment_by_handle(entity)
        except Exception:  # noqa: BLE001
            log_once('_http.end', 'Ending the request segment failed.')

    def _record_outcome(self, entity: Any, status: Any, content_length: Any, exception: Optional[BaseException],
                        stack: Any) -> None:
        # Exceptions, unusual values and URL annotations go through the validating entity API.
        if exception is not None:
            if stack is None:
                stack = innermost_frames(exception, self.recorder.max_trace_back)
            entity.add_exception(exception, stack)
            if status is None:
                status = 500
        length = _as_length(content_length)
        if status is not None:
            entity.put_http_meta(http.STATUS, status)
            if self.annotate_urls:
                entity.put_annotation(http.STATUS, status)
        if length is not None:
            entity.put_http_meta(http.CONTENT_LENGTH, length)
            if self.annotate_urls:
                entity.put_annotation(http.CONTENT_LENGTH, length)


def _as_length(content_length: Any) -> Optional[int]:
    """A ``Content-Length`` as the int the ``http`` block records; None when absent or not a number."""
    if content_length is None or content_length == '':
        return None
    try:
        return int(content_length)
    except (TypeError, ValueError):
        return None


# Routes (templates; None for requests without one) whose requests asked for their deferred segment.
# Their requests begin a real segment from then on: deferring pays off only where handlers record
# nothing (health checks, cached answers), and building a segment from a pending one costs more than
# building it at once. Bounded, for apps that add routes at run time.
_routes_that_record: Dict[Optional[str], bool] = {}


def _remember_route_that_records(route: Optional[str]) -> None:
    if len(_routes_that_record) >= 4096:
        _routes_that_record.clear()
    _routes_that_record[route] = True


def _request_fields(method: str, url: str, user_agent: Optional[str], client_ip: Optional[str],
                    x_forwarded_for: Optional[str]) -> Dict[str, Any]:
    """The ``http.request`` block: URL without query, method, user agent and client address."""
    if url and ('?' in url or '#' in url):
        url = strip_url(url)
    fields: Dict[str, Any] = {http.URL: url, http.METHOD: method}
    if user_agent:
        fields[http.USER_AGENT] = user_agent
    if x_forwarded_for:
        # The first address is the client; a proxy appends the ones it came through.
        forwarded = x_forwarded_for.split(',', 1)[0].strip()
        if forwarded:
            fields[http.CLIENT_IP] = forwarded
            fields[http.X_FORWARDED_FOR] = True
            return fields
    if client_ip:
        fields[http.CLIENT_IP] = client_ip
    return fields


def _response_header(trace_header: TraceHeader, segment: Any) -> Optional[str]:
    # The response header depends only on the trace and the decision: known once the segment is
    # begun. The segment is open then, so a failure here must still leave a handle that ends it.
    try:
        return prepare_response_header(trace_header, segment)
    except Exception:  # noqa: BLE001
        log_once('_http.response_header', 'Could not build the response trace header.')
        return None


def _host_without_port(host: Optional[str]) -> Optional[str]:
    if not host:
        return host
    if host.startswith('['):  # IPv6 literal
        return host.partition(']')[0] + ']'
    return host.rsplit(':', 1)[0] if host.count(':') == 1 else host


def begin_request(recorder: Any, request: IncomingRequest, urls_as_annotation: bool = False) -> RequestTrace:
    """Open the segment for ``request`` and make it current in this thread or task.

    Returns a handle whose :meth:`RequestTrace.finish` ends that segment. On any internal failure
    (including a missing service name) the handle is inert: finishing it does nothing.
    """
    return begin_request_for(recorder, request.method, request.url, request.host, request.path, request.trace_header,
                             request.user_agent, request.client_ip, request.x_forwarded_for, request.route,
                             request.name, urls_as_annotation)


def begin_request_for(recorder: Any, method: str, url: str, host: Optional[str] = None, path: Optional[str] = None,
                      raw_header: Optional[str] = None, user_agent: Optional[str] = None,
                      client_ip: Optional[str] = None, x_forwarded_for: Optional[str] = None,
                      route: Optional[str] = None, name: Optional[str] = None,
                      urls_as_annotation: bool = False, defer: bool = False) -> RequestTrace:
    """:func:`begin_request` with the request's fields as arguments (those of :class:`IncomingRequest`,
    ``raw_header`` being its ``trace_header``).

    For adapters on the hottest paths (aiohttp): a request object built only to be read once here
    costs about as much as everything else the adapter does before the segment exists.

    With ``defer``, a sampled request's segment is begun as a pending segment where the recorder
    allows it (``AWSXRayRecorder.begin_deferred_segment``): the ``Segment`` object is built only if
    the application or an instrumented library asks for it, and otherwise the document is emitted
    as it stands. Either way the same document reaches the daemon.
    """
    trace_header = None
    try:
        if raw_header:
            trace_header = parse_trace_header(raw_header)
            decision = trace_header.sampled
        else:
            trace_header = NO_TRACE_HEADER
            decision = None
        host = host or None
        # The recorder's settings are read from its attributes, not through its properties: this
        # runs once per request, and every property read is a Python call.
        if not name:
            dynamic_naming = recorder._dynamic_naming
            name = dynamic_naming.get_name(_host_without_port(host)) if dynamic_naming else recorder._service
        in_lambda = recorder._context_is_lambda
        if in_lambda is None:  # a recorder that does not keep the flag: ask its context
            in_lambda = isinstance(recorder._context, LambdaContext)
        if in_lambda:
            # In Lambda the function's facade segment is the root; the request is a subsegment of it.
            entity = recorder.begin_subsegment(name or 'request')
        else:
            if decision is None or decision == '?':
                # The sampling request is built only when a rule has to decide.
                decision = 1 if not recorder._sampling else calculate_sampling_decision(
                    trace_header, recorder,
                    {'host': host, 'method': method, 'path': path, 'service': name})
            # Sampled by 1/True (a rule name goes in the aws block: that takes a real segment), on a
            # route whose requests have not asked for their segment so far (see _routes_that_record).
            if defer and decision and decision.__class__ is not str and not urls_as_annotation and (
                    route is None or route.__class__ is str) and route not in _routes_that_record:
                pending = recorder.begin_deferred_segment(
                    name, trace_header.root, trace_header.parent,
                    {'request': _request_fields(method, url, user_agent, client_ip, x_forwarded_for)},
                    {ROUTE_ANNOTATION: route} if route else None, trace_header)
                if pending is not None:
                    # Directly, not through _response_header's guard: a pending segment always has its
                    # trace id, so the header cannot fail here.
                    return RequestTrace(recorder, pending, trace_header, False, False,
                                        prepare_response_header(trace_header, pending), route)
            # Positional: keyword arguments cost more than the call itself here.
            entity = recorder.begin_segment(name, trace_header.root, trace_header.parent, decision)
        if entity is None:
            return RequestTrace(recorder, None, trace_header, in_lambda, False)
        if not in_lambda:
            # save_origin_trace_header, without the call.
            entity._origin_trace_header = trace_header
        if entity.sampled:
            # The blocks are written as put_http_meta/put_annotation would (valid keys, str
            # values), without a call per field.
            fields = _request_fields(method, url, user_agent, client_ip, x_forwarded_for)
            entity._http = {'request': fields}
            entity._has_blocks = True
            if route:
                entity._annotations = {ROUTE_ANNOTATION: route if route.__class__ is str else str(route)}
            if urls_as_annotation:
                for key, value in fields.items():
                    entity.put_annotation(key, value)
        return RequestTrace(recorder, entity, trace_header, in_lambda, urls_as_annotation,
                            _response_header(trace_header, entity.parent_segment if in_lambda else entity))
    except Exception:  # noqa: BLE001 - tracing must never break the request
        log_once('_http.begin', 'Could not begin the request segment; the request proceeds untraced.')
        return RequestTrace(recorder, None, trace_header or TraceHeader(), False, False)

