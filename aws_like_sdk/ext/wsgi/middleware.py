"""Trace any WSGI application: one segment per request, ended when the server closes the response.

Ending on ``close()`` rather than when the application returns times streamed bodies correctly:
the segment covers producing and sending every chunk.
"""
import logging
import re
from typing import Any, Callable, Iterable, Iterator, List, Optional, Tuple
from urllib.parse import quote

from ...core.models import http
from ...core.suppression import is_suppressed
from .._http import IncomingRequest, RequestTrace, ResponseOutcome, begin_request
from .._patching import log_once

__all__ = ['XRayMiddleware', 'set_route', 'ENVIRON_KEY']

log = logging.getLogger(__name__)

#: The environ key under which the request's :class:`~aws_like_sdk.ext._http.RequestTrace` is kept.
ENVIRON_KEY = 'aws_like_sdk.request_trace'

_XRAY_HEADER_LOWER = http.XRAY_HEADER.lower()
# Characters left unquoted when rebuilding the request URL from the decoded PATH_INFO (as wsgiref does).
_PATH_SAFE = "/;=,~!$&'()*+@:%"
# Paths made only of characters quote() leaves alone (the usual case) are used as they are.
_NOTHING_TO_QUOTE = re.compile(r"[A-Za-z0-9_.\-~/;=,!$&'()*+@:%]*\Z")


def set_route(environ: dict, route: str) -> None:
    """Record the matched route template (e.g. ``/users/{id}``) on the request's segment.

    Args:
        environ: the WSGI environ of a request running under :class:`XRayMiddleware`.
        route: the route template; it becomes the ``http_route`` annotation.
    """
    handle = environ.get(ENVIRON_KEY)
    if handle is not None:
        try:
            handle.set_route(route)
        except Exception:  # noqa: BLE001
            log_once('wsgi.set_route', 'Could not record the route on the request segment.')


def _request_url(environ: dict, raw_path: str) -> str:
    scheme = environ.get('wsgi.url_scheme') or 'http'
    host = environ.get('HTTP_HOST')
    if not host:
        host = environ.get('SERVER_NAME') or 'localhost'
        port = str(environ.get('SERVER_PORT') or '')
        if port and (scheme, port) not in (('http', '80'), ('https', '443')):
            host = '%s:%s' % (host, port)
    if _NOTHING_TO_QUOTE.match(raw_path):
        path = raw_path
    else:
        try:
            # PEP 3333 hands the path over as latin-1-decoded bytes; quote those original bytes.
            path = quote(raw_path.encode('latin-1'), safe=_PATH_SAFE)
        except UnicodeEncodeError:
            path = quote(raw_path, safe=_PATH_SAFE)
    return '%s://%s%s' % (scheme, host, path or '/')


def incoming_request(environ: dict, name: Optional[str] = None) -> IncomingRequest:
    """Describe the request in a WSGI ``environ`` for :func:`~aws_like_sdk.ext._http.begin_request`.

    Args:
        environ: a PEP 3333 environ.
        name: a fixed segment name, if any.

    Returns:
        The framework-neutral request (URL without query string, Host, client address, headers).
    """
    get = environ.get
    raw_path = get('SCRIPT_NAME', '') + get('PATH_INFO', '')
    return IncomingRequest(
        get('REQUEST_METHOD') or 'GET',
        _request_url(environ, raw_path),
        get('HTTP_HOST'),
        raw_path or '/',
        get('HTTP_X_AMZN_TRACE_ID'),
        get('HTTP_USER_AGENT'),
        get('REMOTE_ADDR'),
        get('HTTP_X_FORWARDED_FOR'),
        None,
        name,
    )


class XRayMiddleware:
    """Wrap a WSGI application so each request is recorded as a segment.

    Args:
        wsgi_app: any WSGI application (Flask's ``app.wsgi_app``, Django's WSGIHandler, Pyramid, ...).
        recorder: the recorder, normally ``aws_like_sdk.core.xray_recorder``.
        name: a fixed segment name for every request; by default the recorder's service name (or
            dynamic naming on the Host header) is used.

    The application can record its matched route with :func:`set_route`, and reach the request's
    handle under ``environ[ENVIRON_KEY]``. The response gets an ``X-Amzn-Trace-Id`` header.
    """

    def __init__(self, wsgi_app: Callable, recorder: Any, name: Optional[str] = None) -> None:
        self.wsgi_app = wsgi_app
        self._recorder = recorder
        self._name = name

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if is_suppressed() or ENVIRON_KEY in environ:
            return self.wsgi_app(environ, start_response)
        try:
            handle = begin_request(self._recorder, incoming_request(environ, self._name))
            response_header = handle.response_header()
        except Exception:  # noqa: BLE001
            log_once('wsgi.begin', 'Could not trace a WSGI request; it proceeds untraced.')
            return self.wsgi_app(environ, start_response)
        environ[ENVIRON_KEY] = handle
        outcome = ResponseOutcome()

        def traced_start_response(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Any:
            try:
                outcome.status = int(status.split(' ', 1)[0])
                for key, value in headers:
                    lowered = key.lower()
                    if lowered == 'content-length':
                        outcome.content_length = value
                    elif lowered == _XRAY_HEADER_LOWER:
                        break
                else:
                    if response_header:
                        headers = list(headers) + [(http.XRAY_HEADER, response_header)]
            except Exception:  # noqa: BLE001
                log_once('wsgi.start_response', 'Could not record the WSGI response status.')
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        try:
            body = self.wsgi_app(environ, traced_start_response)
        except BaseException as exc:
            handle.finish(status=outcome.status, exception=exc)
            raise
        return _TracedBody(body, handle, outcome)


class _TracedBody:
    """The application's response iterable; the segment ends when the server closes it."""

    __slots__ = ('_body', '_handle', '_outcome', '_exception')

    def __init__(self, body: Iterable[bytes], handle: RequestTrace, outcome: ResponseOutcome) -> None:
        self._body = body
        self._handle = handle
        self._outcome = outcome
        self._exception: Optional[BaseException] = None

    def __iter__(self) -> Iterator[bytes]:
        outcome = self._outcome
        try:
            for chunk in self._body:
                outcome.body_bytes += len(chunk)
                yield chunk
        except GeneratorExit:
            # The server stopped iterating (e.g. the client went away) and will call close().
            raise
        except BaseException as exc:
            self._exception = exc
            raise

    def close(self) -> None:
        """Close the application's iterable, then end the request segment."""
        exception = self._exception
        try:
            close = getattr(self._body, 'close', None)
            if close is not None:
                close()
        except BaseException as exc:
            exception = exception or exc
            raise
        finally:
            outcome = self._outcome
            length = outcome.content_length
            if length is None and exception is None:
                length = outcome.body_bytes
            self._handle.finish(status=outcome.status, content_length=length, exception=exception)
