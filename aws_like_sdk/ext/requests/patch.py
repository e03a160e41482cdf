"""One ``remote`` subsegment per ``requests`` call.

``Session.send`` is wrapped rather than ``Session.request``: every call goes through it (``requests.get``,
``Session.request`` and a prepared request sent by hand alike), and redirects followed inside it stay in the
same subsegment, which ends with the final status. The trace header is written on the prepared request
before it is sent; redirected requests carry it on. The layers below (urllib3, http.client) run inside
``suppress_tracing()`` so a patched http.client adds no second subsegment.
"""
import logging
from typing import Any

from ...core import xray_recorder
from ...core.suppression import is_suppressed, suppress_tracing
from .. import _outgoing
from .._patching import CallSites, guard
from ..util import get_hostname

log = logging.getLogger(__name__)

__all__ = ['patch', 'unpatch', 'requests_processor']

def patch() -> None:
    """Trace every ``requests.Session.send`` call. Idempotent."""
    _SITES.patch()


def unpatch() -> None:
    """Undo :func:`patch`. Idempotent."""
    _SITES.unpatch()


def requests_processor(wrapped, instance, args, kwargs, return_value, exception, subsegment, stack) -> None:
    """Record the request, then the response status or the exception, on the requests subsegment."""
    request = _request_arg(args, kwargs)
    _outgoing.record_request(subsegment, request.method, request.url)
    if return_value is not None:
        _outgoing.record_response(subsegment, getattr(return_value, 'status_code', None))
    if exception is not None:
        _outgoing.record_failure(subsegment, exception, stack)


def _request_arg(args, kwargs) -> Any:
    return args[0] if args else kwargs['request']


@guard
def _traced_send(wrapped, instance, args, kwargs):
    if is_suppressed():
        return wrapped(*args, **kwargs)
    recorder = xray_recorder
    if _outgoing.parent_entity(recorder) is None:
        return wrapped(*args, **kwargs)
    request = _request_arg(args, kwargs)

    def send_with_header(*a, **kw):
        # Runs inside the subsegment: it is the current entity, so it becomes the callee's parent.
        _outgoing.set_trace_header(request.headers, recorder.get_trace_entity())
        with suppress_tracing():
            return wrapped(*a, **kw)

    return recorder.record_subsegment(send_with_header, instance, args, kwargs, name=get_hostname(request.url),
                                      namespace=_outgoing.REMOTE_NAMESPACE, meta_processor=requests_processor)


_SITES = CallSites(('requests', 'Session.send', _traced_send))
