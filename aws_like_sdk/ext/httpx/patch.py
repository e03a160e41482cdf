"""One ``remote`` subsegment per request sent by an ``httpx`` transport.

``HTTPTransport.handle_request`` and ``AsyncHTTPTransport.handle_async_request`` are wrapped at class
level, so clients built before ``patch()`` are traced too, as are transports given explicitly or mounted.
Each request a client sends through its transport is one subsegment (a followed redirect is a new
request and so a new subsegment, each carrying its own trace header). The subsegment ends when the
response headers have arrived; a streamed body is read afterwards by the application.
"""
import logging
from typing import Any

from ...core import xray_recorder
from ...core.suppression import is_suppressed, suppress_tracing
from .. import _outgoing
from .._patching import CallSites, guard, guard_async
from ..util import get_hostname

log = logging.getLogger(__name__)

__all__ = ['patch', 'unpatch', 'httpx_processor']

def patch() -> None:
    """Trace the default sync and async ``httpx`` transports. Idempotent."""
    _SITES.patch()


def unpatch() -> None:
    """Undo :func:`patch`. Idempotent."""
    _SITES.unpatch()


def httpx_processor(wrapped, instance, args, kwargs, return_value, exception, subsegment, stack) -> None:
    """Record the request, then the response status or the exception, on the httpx subsegment."""
    request = _request_arg(args, kwargs)
    _outgoing.record_request(subsegment, request.method, str(request.url))
    if return_value is not None:
        _outgoing.record_response(subsegment, getattr(return_value, 'status_code', None))
    if exception is not None:
        _outgoing.record_failure(subsegment, exception, stack)


def _request_arg(args, kwargs) -> Any:
    return args[0] if args else kwargs['request']


def _prepare(args, kwargs):
    """The request and the subsegment name when this call is to be traced, else None."""
    if is_suppressed():
        return None
    if _outgoing.parent_entity(xray_recorder) is None:
        return None
    request = _request_arg(args, kwargs)
    return request, get_hostname(str(request.url))


@guard
def _traced_handle_request(wrapped, instance, args, kwargs):
    prepared = _prepare(args, kwargs)
    if prepared is None:
        return wrapped(*args, **kwargs)
    request, name = prepared
    recorder = xray_recorder

    def send_with_header(*a, **kw):
        _outgoing.set_trace_header(request.headers, recorder.get_trace_entity())
        with suppress_tracing():
            return wrapped(*a, **kw)

    return recorder.record_subsegment(send_with_header, instance, args, kwargs, name=name,
                                      namespace=_outgoing.REMOTE_NAMESPACE, meta_processor=httpx_processor)


@guard_async
async def _traced_handle_async_request(wrapped, instance, args, kwargs):
    prepared = _prepare(args, kwargs)
    if prepared is None:
        return await wrapped(*args, **kwargs)
    request, name = prepared
    recorder = xray_recorder

    async def send_with_header(*a, **kw):
        _outgoing.set_trace_header(request.headers, recorder.get_trace_entity())
        with suppress_tracing():
            return await wrapped(*a, **kw)

    return await recorder.record_subsegment_async(send_with_header, instance, args, kwargs, name=name,
                                                  namespace=_outgoing.REMOTE_NAMESPACE,
                                                  meta_processor=httpx_processor)


_SITES = CallSites(('httpx', 'HTTPTransport.handle_request', _traced_handle_request),
                   ('httpx', 'AsyncHTTPTransport.handle_async_request', _traced_handle_async_request))
