"""What the outgoing-call patches (requests, http.client, httpx, botocore) share.

* :func:`parent_entity` decides whether a call can be traced: SDK enabled and an entity open. When
  none is open the recorder's context-missing strategy runs (LOG_ERROR logs, IGNORE_ERROR stays
  quiet) but the call always proceeds untraced: a ``RUNTIME_ERROR`` strategy is logged rather than
  raised, because instrumentation must never change what the application raises.
* :func:`begin_detached_subsegment` opens a subsegment that is a child of the current entity without
  becoming the current entity itself, for http.client, whose exchange spans several calls the
  application makes (``request`` ... ``getresponse`` ... ``read``) with its own code in between.
* :func:`trace_header_value` is the ``X-Amzn-Trace-Id`` value naming a subsegment as the parent.
* :func:`record_response` and :func:`record_failure` put the outcome on a subsegment.

One outgoing call gives one subsegment: the outermost patched layer opens it and runs the layers
below inside :func:`~aws_like_sdk.core.suppression.suppress_tracing`, which every patch checks first.
"""
import contextvars
import logging
from typing import Any, Optional

from .. import global_sdk_config
from ..core.exceptions.exceptions import SegmentNotFoundException
from ..core.models import http
from ..core.utils.stacktrace import get_stacktrace
from ._sql import strip_url_credentials
from .util import inject_trace_header

log = logging.getLogger(__name__)

REMOTE_NAMESPACE = 'remote'


def parent_entity(recorder: Any) -> Any:
    """Return the entity an outgoing-call subsegment would hang off, or None to leave the call untraced.

    Args:
        recorder: the recorder whose context is consulted.

    Returns:
        The current segment or subsegment, or None when the SDK is disabled or nothing is open.
    """
    if not global_sdk_config.sdk_enabled():
        return None
    context = recorder.context
    entity = context.peek_trace_entity()
    if entity is not None:
        return entity
    try:
        context.handle_context_missing()
    except SegmentNotFoundException as exc:
        log.error('Outgoing call made outside any segment; it proceeds untraced: %s', exc)
    return None


def begin_detached_subsegment(recorder: Any, name: str, namespace: str = REMOTE_NAMESPACE) -> Any:
    """Begin a subsegment under the current entity without making it current.

    The subsegment is pushed in a copy of the current context, so the recorder's own rules (sampling
    of the parent, Lambda facades) apply while this context's stack stays as it was. End it with
    ``recorder.end_subsegment_by_handle``.

    Returns:
        The subsegment (a dummy one under an unsampled parent), or None when it could not be created.
    """
    return contextvars.copy_context().run(recorder.begin_subsegment, name, namespace)


def trace_header_value(entity: Any) -> Optional[str]:
    """The ``X-Amzn-Trace-Id`` value that makes ``entity`` the parent of the downstream call."""
    headers: dict = {}
    inject_trace_header(headers, entity)
    return headers.get(http.XRAY_HEADER)


def set_trace_header(headers: Any, entity: Any) -> None:
    """Write the trace header into a mutable mapping, replacing one already there in any letter case."""
    value = trace_header_value(entity)
    if value is None:
        return
    lowered = http.XRAY_HEADER.lower()
    for key in [k for k in headers.keys() if isinstance(k, str) and k.lower() == lowered and k != http.XRAY_HEADER]:
        del headers[key]
    headers[http.XRAY_HEADER] = value


def safe_url(url: Any) -> Optional[str]:
    """``url`` as recorded: no user info, password, query string or fragment."""
    if url is None:
        return None
    text = url.decode('latin-1') if isinstance(url, bytes) else str(url)
    return strip_url_credentials(text)


def record_request(subsegment: Any, method: Any, url: Any) -> None:
    """Put the request ``method`` and credential- and query-free ``url`` on ``subsegment``."""
    if isinstance(method, bytes):
        method = method.decode('latin-1')
    subsegment.put_http_meta(http.METHOD, method)
    subsegment.put_http_meta(http.URL, safe_url(url))


def record_response(subsegment: Any, status: Any, content_length: Any = None) -> None:
    """Put the response status (and so the error/throttle/fault flags) and length on ``subsegment``."""
    if status is not None:
        subsegment.put_http_meta(http.STATUS, status)
    if content_length not in (None, ''):
        try:
            subsegment.put_http_meta(http.CONTENT_LENGTH, int(content_length))
        except (TypeError, ValueError):
            log.debug('Ignoring unparsable Content-Length %r.', content_length)


def record_failure(subsegment: Any, exception: BaseException, stack: Any = None, max_trace_back: int = 10) -> None:
    """Record the exception a call raised (connection refused, timeout, ...) with its stack."""
    if stack is None:
        stack = get_stacktrace(limit=max_trace_back)
    subsegment.add_exception(exception, stack)
