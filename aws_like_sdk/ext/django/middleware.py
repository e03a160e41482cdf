"""``XRayMiddleware``: one segment per Django request, in WSGI and ASGI deployments alike.

The middleware only adapts Django's request and response to the shared helper in ``ext/_http.py``
(naming, sampling, trace header, Lambda, ``http`` block, status flags, response header). It keeps
the returned handle on the request and ends exactly that segment: when the response is returned,
or, for a streaming response, when its last chunk was sent (or the response was closed).
"""
import logging
import re
from typing import Any, AsyncIterator, Callable, Iterator, Optional

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings as django_settings
from django.http import HttpRequest, HttpResponseBase
from django.utils.encoding import escape_uri_path

from ... import global_sdk_config
from ...core.lambda_launcher import LambdaContext
from ...core.models import http
from ...core.suppression import is_suppressed
from .._http import IncomingRequest, RequestTrace, begin_request
from .._patching import log_once
from . import conf

log = logging.getLogger(__name__)

__all__ = ['XRayMiddleware']

# Attribute names on the HttpRequest; prefixed so they cannot clash with the application's own.
_TRACE_ATTR = '_aws_like_sdk_trace'
_EXCEPTION_ATTR = '_aws_like_sdk_exception'


# Characters escape_uri_path leaves alone: most paths need no quoting at all.
_SAFE_PATH = re.compile(r"[A-Za-z0-9/:@&+$,\-_.!~*'()]*\Z")


def _host(meta: Any) -> Optional[str]:
    # The host as sent, like HttpRequest._get_raw_host(): get_host() would also validate it against
    # ALLOWED_HOSTS, which CommonMiddleware does anyway and a trace has no use for (a rejected host
    # is worth recording as sent).
    # The header first: every read of a Django setting costs about half a microsecond.
    forwarded_host = meta.get('HTTP_X_FORWARDED_HOST')
    if forwarded_host and django_settings.USE_X_FORWARDED_HOST:
        return forwarded_host
    host = meta.get('HTTP_HOST')
    if host:
        return host
    name = meta.get('SERVER_NAME')
    if not name:
        return None
    port = str(meta.get('SERVER_PORT') or '')
    return name if port in ('', '80', '443') else '%s:%s' % (name, port)


def _incoming_request(request: HttpRequest) -> IncomingRequest:
    meta = request.META
    host = _host(meta)
    path = request.path
    get = meta.get
    # Positional (method, url, host, path, trace_header, user_agent, client_ip, x_forwarded_for):
    # cheaper than keywords, once per request.
    return IncomingRequest(
        request.method or '',
        '%s://%s%s' % (request.scheme, host or '', path if _SAFE_PATH.match(path) else escape_uri_path(path)),
        host,
        path,
        get(http.ALT_XRAY_HEADER),
        get('HTTP_USER_AGENT'),
        get('REMOTE_ADDR'),
        get('HTTP_X_FORWARDED_FOR'),
    )


def _forget(request: HttpRequest) -> Optional[BaseException]:
    """Take the handle and the remembered exception off the request; returns the exception.

    The request may be part of a reference cycle (the test client's are): whatever hangs off it
    (the whole segment, a traceback with its frames) would otherwise live until the next GC run, and
    make those runs more frequent and longer.
    """
    attributes = request.__dict__
    attributes.pop(_TRACE_ATTR, None)
    return attributes.pop(_EXCEPTION_ATTR, None)


_XRAY_HEADER_KEY = http.XRAY_HEADER.lower()


def _header_store(response: HttpResponseBase) -> Optional[dict]:
    """The dict behind ``response.headers`` (lower-case name -> (name, value)), when it is one.

    Django's header mapping goes through ``Mapping.get`` (a raised and caught KeyError for a missing
    header) and re-validates values on every write; reading and writing its store directly is a
    tenth of that. Any other shape of ``headers`` takes the public API.
    """
    store = getattr(response.headers, '_store', None)
    return store if store.__class__ is dict else None


class XRayMiddleware:
    """Trace each request as a segment. Put it first in ``MIDDLEWARE``.

    Works with sync and async middleware chains: Django hands it an async ``get_response`` under
    ASGI (with async views or middleware), and it then runs as a coroutine, so no thread hop is
    added to the request path.

    Args:
        get_response: the next handler in Django's middleware chain.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)
        from ...core import xray_recorder
        self._recorder = xray_recorder
        self._settings_seen: Any = None
        self._urls_mode = 'LAMBDA'

    # -- entry points --------------------------------------------------------------------------
    def __call__(self, request: HttpRequest) -> Any:
        if self._is_async:
            return self.__acall__(request)
        trace = self._begin(request)
        if trace is None:
            return self.get_response(request)
        try:
            response = self.get_response(request)
        except BaseException as exc:
            # Only reached when Django lets exceptions propagate (DEBUG_PROPAGATE_EXCEPTIONS).
            self._fail(trace, request, exc)
            raise
        return self._end(trace, request, response)

    async def __acall__(self, request: HttpRequest) -> Any:
        """The coroutine form of :meth:`__call__`, used in an async middleware chain."""
        trace = self._begin(request)
        if trace is None:
            return await self.get_response(request)
        try:
            response = await self.get_response(request)
        except BaseException as exc:
            self._fail(trace, request, exc)
            raise
        return self._end(trace, request, response)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        """Remember the exception a view raised; it is recorded when the response turns out to be a 5xx.

        Exceptions Django turns into 4xx responses (``Http404``, ``PermissionDenied``, ...) set the
        error flag through the status, without a ``cause``, as in the other web integrations.
        """
        if getattr(request, _TRACE_ATTR, None) is not None:
            setattr(request, _EXCEPTION_ATTR, exception)
        return None

    # -- adapter -------------------------------------------------------------------------------
    def _urls_as_annotation(self) -> bool:
        current = conf.settings
        if current is not self._settings_seen:
            # Re-read only when override_settings / a reload replaced the settings object.
            self._urls_mode = current.validated('URLS_AS_ANNOTATION')
            self._settings_seen = current
        mode = self._urls_mode
        return mode == 'ALL' or (mode == 'LAMBDA' and isinstance(self._recorder.context, LambdaContext))

    def _begin(self, request: HttpRequest) -> Optional[RequestTrace]:
        if is_suppressed() or not global_sdk_config.sdk_enabled():
            return None
        try:
            incoming = _incoming_request(request)
            annotate = self._urls_as_annotation()
        except Exception:  # noqa: BLE001 - never let tracing break the request
            log_once('django.begin', 'Could not read the Django request; it proceeds untraced.')
            return None
        trace = begin_request(self._recorder, incoming, urls_as_annotation=annotate)
        if trace.entity is None:
            return None
        setattr(request, _TRACE_ATTR, trace)
        return trace

    def _fail(self, trace: RequestTrace, request: HttpRequest, exc: BaseException) -> None:
        _forget(request)
        trace.finish(exception=exc)

    def _end(self, trace: RequestTrace, request: HttpRequest, response: Any) -> Any:
        exception = _forget(request)
        try:
            status = getattr(response, 'status_code', None)
            if exception is not None and (status is None or status < 500):
                exception = None
            is_django_response = isinstance(response, HttpResponseBase)
            header = trace.response_header()
            store = _header_store(response) if is_django_response else None
            if header is not None and is_django_response:
                if store is not None:
                    # What ResponseHeaders.__setitem__ stores; the value is our own ASCII id string.
                    store[_XRAY_HEADER_KEY] = (http.XRAY_HEADER, header)
                else:
                    response.headers[http.XRAY_HEADER] = header
            match = getattr(request, 'resolver_match', None)
            route = getattr(match, 'route', None) or None
            if getattr(response, 'streaming', False):
                if self._finish_after_streaming(trace, response, status, exception, route):
                    return response
                content_length = response.get('Content-Length')
            elif store is not None:
                entry = store.get('content-length')
                content_length = entry[1] if entry is not None else len(response.content)
            elif is_django_response:
                content_length = response.headers.get('Content-Length')
                if content_length is None:
                    content_length = len(response.content)
            else:
                content_length = response.get('Content-Length')
        except Exception:  # noqa: BLE001
            log_once('django.end', 'Could not read the Django response; the segment is closed as is.')
            trace.finish()
            return response
        trace.finish(status=status, content_length=content_length, exception=exception, route=route)
        return response

    def _finish_after_streaming(self, trace: RequestTrace, response: Any, status: Optional[int],
                                exception: Optional[BaseException], route: Optional[str]) -> bool:
        """End the segment when the body has been sent; returns False when that cannot be arranged."""
        if getattr(response, 'file_to_stream', None) is not None:
            # Replacing a FileResponse's content would defeat the server's sendfile fast path.
            return False
        stream_class = _AsyncTracedStream if getattr(response, 'is_async', False) else _SyncTracedStream
        response.streaming_content = stream_class(response.streaming_content, trace, status,
                                                  response.get('Content-Length'), exception, route)
        return True


def _chunk_size(chunk: Any) -> int:
    try:
        return len(chunk)
    except TypeError:
        return 0


class _TracedStream:
    """Passes a streaming body through and finishes the request segment when it is exhausted,
    fails, or is closed (Django closes every response, even one whose body was never read)."""

    __slots__ = ('_content', '_trace', '_status', '_declared', '_exception', '_route', '_sent')

    def __init__(self, content: Any, trace: RequestTrace, status: Optional[int], declared: Any,
                 exception: Optional[BaseException], route: Optional[str]) -> None:
        self._content = content
        self._trace = trace
        self._status = status
        self._declared = declared
        self._exception = exception
        self._route = route
        self._sent = 0

    def _finish(self, error: Optional[BaseException] = None) -> None:
        length = self._declared if self._declared is not None else self._sent
        # A body that fails half-way reached the client as a broken response: record why.
        self._trace.finish(status=self._status, content_length=length, exception=error or self._exception,
                           route=self._route)

    def close(self) -> None:
        """Called by ``HttpResponse.close()``; finishing twice is a no-op."""
        self._finish()


class _SyncTracedStream(_TracedStream):
    __slots__ = ('_iterator',)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._iterator = iter(self._content)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self._iterator)
        except StopIteration:
            self._finish()
            raise
        except BaseException as exc:
            self._finish(exc)
            raise
        self._sent += _chunk_size(chunk)
        return chunk


class _AsyncTracedStream(_TracedStream):
    __slots__ = ('_iterator',)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._iterator = self._content.__aiter__()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self._iterator.__anext__()
        except StopAsyncIteration:
            self._finish()
            raise
        except BaseException as exc:
            self._finish(exc)
            raise
        self._sent += _chunk_size(chunk)
        return chunk

    async def aclose(self) -> None:
        aclose = getattr(self._iterator, 'aclose', None)
        if aclose is not None:
            await aclose()
        self._finish()
