"""aiohttp server middleware: one segment per request.

Usage::

    from aiohttp import web
    from aws_like_sdk.core import xray_recorder
    from aws_like_sdk.core.async_context import AsyncContext
    from aws_like_sdk.ext.aiohttp.middleware import middleware

    xray_recorder.configure(service='my-app', context=AsyncContext())
    app = web.Application(middlewares=[middleware])

This adapter only reads the aiohttp request's fields and hands them to
:func:`~aws_like_sdk.ext._http.begin_request_for`; naming, sampling, the ``http`` block, flags and the
response header are decided in ``ext/_http.py``. The handle it returns is kept in a local, so the
request ends exactly the segment it opened whatever other tasks do with the context meanwhile.
"""
import logging
from typing import Any, Awaitable, Callable, Dict, Optional

from aiohttp import hdrs, web
from multidict import istr

from ... import global_sdk_config
from ...core import xray_recorder
from ...core.models import http
from ...core.suppression import is_suppressed
from .._http import RequestTrace, begin_request_for
from .._patching import log_once

log = logging.getLogger(__name__)

__all__ = ['middleware']

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A case-insensitive key, as aiohttp's own header names: multidict then skips case-folding it per lookup.
_XRAY_HEADER = istr(http.XRAY_HEADER)


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Trace ``request`` in a segment and return exactly what ``handler`` returns.

    Returned responses and raised :class:`aiohttp.web.HTTPException` s get their status (4xx error,
    429 throttle, 5xx fault), content length and the ``X-Amzn-Trace-Id`` response header; the HTTP
    exception is re-raised unchanged and recorded without a ``cause``. Any other exception, including
    :class:`asyncio.CancelledError` when the client goes away, is recorded as a fault (status 500)
    and re-raised. The segment is always ended.

    Args:
        request: the incoming aiohttp request.
        handler: the next handler in the middleware chain.

    Returns:
        The handler's response, with the trace header added when it has not been sent yet.
    """
    # With the SDK switched off the application must look exactly as if it were not instrumented.
    if is_suppressed() or not global_sdk_config.sdk_enabled():
        return await handler(request)
    try:
        # The request's fields, read here and handed to the helper as arguments (one call fewer per
        # request than a function of their own).
        headers = request.headers
        # request.host falls back to a name lookup of this machine on some aiohttp versions; a request
        # without a Host header is named after the service instead and its URL uses the local socket.
        host = request.host if hdrs.HOST in headers else None
        authority = host or _local_authority(request)
        raw_path = request.rel_url.raw_path
        get = headers.get
        # The route's canonical template, looked up once per route (see _canonical_of).
        route = getattr(request.match_info, 'route', None)
        canonical = _canonical_of.get(route, _MISSING)
        if canonical is _MISSING:
            canonical = _remember_canonical(route)
        # Positional (cheaper than keywords, once per request), in begin_request_for's order: method,
        # url, host, path, trace header, user agent, client ip, X-Forwarded-For, route.
        trace = begin_request_for(
            xray_recorder,
            request.method,
            '%s://%s%s' % (request.scheme, authority, raw_path) if authority else raw_path,
            host,
            # Decoding only ever changes %-escapes: without one the decoded path is the raw path.
            raw_path if '%' not in raw_path else request.path,
            get(_XRAY_HEADER),
            get(hdrs.USER_AGENT),
            # The real peer (or what a trusted proxy middleware set through request.clone(remote=...)),
            # never a client-supplied header.
            request.remote,
            get(hdrs.X_FORWARDED_FOR),
            canonical,
            None,  # name: the service's, or dynamic naming's
            False,  # urls_as_annotation
            True,  # defer: the Segment object is built only if the handler asks for it
        )
    except Exception:  # noqa: BLE001 - an odd request must not fail the application
        log_once('aiohttp.middleware.request', 'Could not read the aiohttp request; it proceeds untraced.')
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _finish_with_response(trace, exc)
        raise
    except BaseException as exc:
        trace.finish(exception=exc)
        raise
    _finish_with_response(trace, response)
    return response


def _local_authority(request: web.Request) -> Optional[str]:
    transport = request.transport
    sockname = transport.get_extra_info('sockname') if transport is not None else None
    if isinstance(sockname, (tuple, list)) and len(sockname) >= 2:
        address = str(sockname[0])
        if ':' in address:
            address = '[%s]' % address
        return '%s:%s' % (address, sockname[1])
    return None


# Route -> its canonical template: each app route is looked up once (its template never changes).
_canonical_of: Dict[Any, Optional[str]] = {}
_MISSING = object()


def _remember_canonical(route: Any) -> Optional[str]:
    # Unmatched requests (404/405) carry a system route without a resource: no route to group by,
    # and a new route object each time, so they are not remembered.
    resource = getattr(route, 'resource', None)
    if resource is None:
        return None
    canonical = getattr(resource, 'canonical', None)
    if len(_canonical_of) >= 4096:  # bound it even for apps that add routes at run time
        _canonical_of.clear()
    _canonical_of[route] = canonical
    return canonical


def _finish_with_response(trace: RequestTrace, response: Any) -> None:
    status = content_length = None
    try:
        status = response.status
        header = trace.header
        # A streaming response prepared by the handler has already sent its headers.
        if header is not None and not response.prepared:
            response.headers[_XRAY_HEADER] = header
        content_length = response.content_length
    except Exception:  # noqa: BLE001 - e.g. a handler that returned something other than a response
        log_once('aiohttp.middleware.response', 'Could not read the aiohttp response for the trace.')
        if status is None:
            # aiohttp cannot send such a "response" (it answers 500 or drops the connection): a fault.
            status = 500
    trace.finish(status, content_length)
