"""Trace ASGI 3 applications: one segment per ``http`` request; other scopes pass through untouched.

The segment is begun in the task that runs the request, so it is current for the application (the
context is a ContextVar) and ends when the application returns or raises, which is after the last
body chunk was sent.
"""
import logging
from typing import Any, Awaitable, Callable, Dict, MutableMapping, Optional

from ...core.models import http
from ...core.suppression import is_suppressed
from .._http import IncomingRequest, RequestTrace, ResponseOutcome, begin_request
from .._patching import log_once

__all__ = ['XRayMiddleware', 'SCOPE_KEY']

log = logging.getLogger(__name__)

#: The scope key under which the request's :class:`~aws_like_sdk.ext._http.RequestTrace` is kept.
SCOPE_KEY = 'aws_like_sdk.request_trace'

Scope = MutableMapping[str, Any]
Message = Dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_XRAY_HEADER_BYTES = http.XRAY_HEADER.lower().encode('latin-1')
_DEFAULT_PORTS = {('http', 80), ('https', 443), ('ws', 80), ('wss', 443)}


def _decode(value: Any) -> str:
    return value.decode('latin-1') if isinstance(value, (bytes, bytearray)) else str(value)


def _incoming_request(scope: Scope, name: Optional[str]) -> IncomingRequest:
    headers: Dict[str, str] = {}
    for key, value in scope.get('headers') or ():
        # First occurrence wins, except that repeated X-Forwarded-For values are joined, per RFC 9110.
        key_str = _decode(key).lower()
        if key_str in headers:
            if key_str == 'x-forwarded-for':
                headers[key_str] += ', ' + _decode(value)
            continue
        headers[key_str] = _decode(value)
    scheme = scope.get('scheme') or 'http'
    host = headers.get('host')
    url_host = host
    if not url_host:
        server = scope.get('server')
        if server and server[0]:
            url_host = server[0] if server[1] is None or (scheme, server[1]) in _DEFAULT_PORTS \
                else '%s:%s' % (server[0], server[1])
        else:
            url_host = 'localhost'
    path = (scope.get('root_path') or '') + (scope.get('path') or '/')
    raw_path = scope.get('raw_path')
    url_path = _decode(raw_path) if raw_path else path
    client = scope.get('client')
    return IncomingRequest(
        method=scope.get('method') or 'GET',
        url='%s://%s%s' % (scheme, url_host, url_path),
        host=host,
        path=path,
        trace_header=headers.get('x-amzn-trace-id'),
        user_agent=headers.get('user-agent'),
        client_ip=client[0] if client else None,
        x_forwarded_for=headers.get('x-forwarded-for'),
        name=name,
    )


def _route_of(scope: Scope, root_path: str) -> Optional[str]:
    # Starlette (and FastAPI) put the matched route object in the scope; Mount adds its prefix to
    # root_path, so the part of root_path added while routing is the concrete mount prefix.
    route = scope.get('route')
    template = getattr(route, 'path', None) if route is not None else None
    if not isinstance(template, str):
        return None
    current_root = scope.get('root_path') or ''
    prefix = current_root[len(root_path):] if current_root.startswith(root_path) else ''
    return prefix + template


class XRayMiddleware:
    """Wrap an ASGI 3 application so each HTTP request is recorded as a segment.

    Args:
        asgi_app: the ASGI application (a Starlette/FastAPI app, Django's ASGI handler, ...).
        recorder: the recorder, normally ``aws_like_sdk.core.xray_recorder``.
        name: a fixed segment name for every request; by default the recorder's service name (or
            dynamic naming on the Host header) is used.

    ``websocket`` and ``lifespan`` scopes reach the application untouched. For Starlette and FastAPI
    the matched route template becomes the ``http_route`` annotation. An exception escaping the
    application is recorded (fault) and re-raised unchanged.
    """

    def __init__(self, asgi_app: Callable, recorder: Any, name: Optional[str] = None) -> None:
        self.app = asgi_app
        self._recorder = recorder
        self._name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get('type') != 'http' or is_suppressed() or SCOPE_KEY in scope:
            await self.app(scope, receive, send)
            return
        root_path = scope.get('root_path') or ''
        try:
            handle = begin_request(self._recorder, _incoming_request(scope, self._name))
            response_header = handle.response_header()
        except Exception:  # noqa: BLE001
            log_once('asgi.begin', 'Could not trace an ASGI request; it proceeds untraced.')
            await self.app(scope, receive, send)
            return
        outcome = ResponseOutcome()
        scope[SCOPE_KEY] = handle
        header_value = response_header.encode('latin-1') if response_header else None

        async def traced_send(message: Message) -> None:
            try:
                kind = message.get('type')
                if kind == 'http.response.start':
                    message = _on_start(message, outcome, header_value)
                elif kind == 'http.response.body':
                    outcome.body_bytes += len(message.get('body') or b'')
            except Exception:  # noqa: BLE001
                log_once('asgi.send', 'Could not record the ASGI response on its segment.')
            await send(message)

        try:
            await self.app(scope, receive, traced_send)
        except BaseException as exc:
            _finish(handle, outcome, scope, root_path, exc)
            raise
        _finish(handle, outcome, scope, root_path, None)


def _on_start(message: Message, outcome: ResponseOutcome, header_value: Optional[bytes]) -> Message:
    outcome.status = int(message['status'])
    headers = message.get('headers') or []
    has_trace_header = False
    for key, value in headers:
        lowered = bytes(key).lower()
        if lowered == b'content-length':
            outcome.content_length = _decode(value)
        elif lowered == _XRAY_HEADER_BYTES:
            has_trace_header = True
    if header_value is not None and not has_trace_header:
        # A new message and header list: the application may reuse (or have frozen) its own.
        message = dict(message)
        message['headers'] = list(headers) + [(_XRAY_HEADER_BYTES, header_value)]
    return message


def _finish(handle: RequestTrace, outcome: ResponseOutcome, scope: Scope, root_path: str,
            exception: Optional[BaseException]) -> None:
    try:
        route = _route_of(scope, root_path)
    except Exception:  # noqa: BLE001
        route = None
    length: Any = outcome.content_length
    if length is None and exception is None and outcome.status is not None:
        length = outcome.body_bytes
    handle.finish(status=outcome.status, content_length=length, exception=exception, route=route)
