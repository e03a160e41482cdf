"""aiohttp client tracing through an :class:`aiohttp.TraceConfig`.

Usage::

    from aiohttp import ClientSession
    from aws_like_sdk.ext.aiohttp.client import aws_xray_trace_config

    async with ClientSession(trace_configs=[aws_xray_trace_config()]) as session:
        async with session.get('https://example.com/items?id=1') as response:
            ...

Every request made under an open segment or subsegment gets a ``remote`` subsegment named after the
URL host (or the ``name`` given), with the method, the URL without query string, the status and its
flags, and the ``X-Amzn-Trace-Id`` header injected so the callee continues the trace.

The subsegment is kept on the per-request ``trace_config_ctx`` and ended by handle. It is never looked
up as "the current subsegment", so many concurrent requests from one session, each in its own task,
end their own subsegment and all hang under the segment that was current when they started.
"""
import logging
from functools import partial
from types import SimpleNamespace
from typing import Any, Optional

import aiohttp

from ...core import xray_recorder
from ...core.exceptions.exceptions import SegmentNotFoundException
from ...core.models import http
from ...core.suppression import is_suppressed
from .._http import innermost_frames
from .._patching import log_once
from ..util import get_hostname, inject_trace_header

log = logging.getLogger(__name__)

__all__ = ['aws_xray_trace_config', 'begin_subsegment', 'end_subsegment', 'end_subsegment_with_exception',
           'REMOTE_NAMESPACE', 'LOCAL_NAMESPACE', 'LOCAL_EXCEPTIONS']

REMOTE_NAMESPACE = 'remote'
LOCAL_NAMESPACE = 'local'
# Failures to reach the remote side at all (DNS, connect, reset) are local: the remote did not fail.
LOCAL_EXCEPTIONS = (aiohttp.client_exceptions.ClientConnectionError, OSError)

# Attribute of trace_config_ctx holding the subsegment this request began.
_HANDLE = 'xray_subsegment'


_abandoned_logged = False


class _RequestContext(SimpleNamespace):
    """The per-request ``trace_config_ctx``: ends a subsegment that aiohttp never reported an end for.

    aiohttp before 3.14 runs every TraceConfig's ``on_request_start`` outside its ``try``: when one
    after ours raises or is cancelled (a timeout around the request), the request is abandoned with
    neither ``on_request_end`` nor ``on_request_exception`` for our subsegment, which would then stay
    open and keep its segment from ever being sent. Once aiohttp drops the request's contexts, this
    closes it as a fault.
    """

    def __del__(self) -> None:
        global _abandoned_logged
        try:
            subsegment = _take_subsegment(self)
            if subsegment is None:
                return
            subsegment.fault = True
            # WARNING the first time, DEBUG after that. Not log_once: it takes a lock, which a
            # finalizer run by the garbage collector inside that very lock would wait on forever.
            level = logging.DEBUG if _abandoned_logged else logging.WARNING
            _abandoned_logged = True
            log.log(level, 'aiohttp abandoned a request to %s without reporting its end (a TraceConfig after '
                    "X-Ray's failed at request start?); its subsegment is closed as a fault.", subsegment.name)
            _end(self, subsegment)
        except Exception:  # noqa: BLE001 - nothing may escape a finalizer
            pass


async def begin_subsegment(session: aiohttp.ClientSession, trace_config_ctx: SimpleNamespace,
                           params: aiohttp.TraceRequestStartParams) -> None:
    """``on_request_start``: begin the request's subsegment and inject the trace header.

    Outside any segment (or with the SDK disabled or tracing suppressed) the request proceeds
    untraced; the recorder's context-missing strategy decides what is logged, and even
    ``RUNTIME_ERROR`` never fails the request.

    Args:
        session: the client session making the request.
        trace_config_ctx: the per-request context from :func:`aws_xray_trace_config`.
        params: aiohttp's request start parameters (method, url, headers).
    """
    setattr(trace_config_ctx, _HANDLE, None)
    trace_config_ctx.give_up = True
    if is_suppressed():
        return
    recorder = getattr(trace_config_ctx, 'recorder', None) or xray_recorder
    try:
        if not recorder.enabled:
            return
        url = params.url
        name = getattr(trace_config_ctx, 'name', None) or url.host or get_hostname(str(url))
        try:
            # Looking the entity up applies the context-missing strategy (an error for LOG_ERROR,
            # silence for IGNORE_ERROR); begin_subsegment would add a warning of its own per request.
            if recorder.get_trace_entity() is None:
                return
            subsegment = recorder.begin_subsegment(name, REMOTE_NAMESPACE)
        except SegmentNotFoundException:
            log_once('aiohttp.client.no_segment',
                     'No segment is open; the aiohttp request to %s proceeds untraced.', name)
            return
        if subsegment is None:
            return
        setattr(trace_config_ctx, _HANDLE, subsegment)
        trace_config_ctx.give_up = False
        if subsegment.sampled:
            subsegment.put_http_meta(http.METHOD, params.method)
            subsegment.put_http_meta(http.URL, _recorded_url(url))
        inject_trace_header(params.headers, subsegment)
    except Exception:  # noqa: BLE001 - a raising trace callback would fail the request
        log_once('aiohttp.client.begin', 'Could not begin the aiohttp client subsegment.')


async def end_subsegment(session: aiohttp.ClientSession, trace_config_ctx: SimpleNamespace,
                         params: aiohttp.TraceRequestEndParams) -> None:
    """``on_request_end``: record the response status (and length) and end the subsegment.

    Args:
        session: the client session making the request.
        trace_config_ctx: the per-request context holding the subsegment.
        params: aiohttp's request end parameters (method, url, headers, response).
    """
    subsegment = _take_subsegment(trace_config_ctx)
    if subsegment is None:
        return
    try:
        if subsegment.sampled and subsegment.in_progress:
            response = params.response
            subsegment.put_http_meta(http.STATUS, response.status)
            length = response.content_length
            if length is not None:
                subsegment.put_http_meta(http.CONTENT_LENGTH, length)
    except Exception:  # noqa: BLE001
        log_once('aiohttp.client.end', 'Could not record the aiohttp response on its subsegment.')
    _end(trace_config_ctx, subsegment)


async def end_subsegment_with_exception(session: aiohttp.ClientSession, trace_config_ctx: SimpleNamespace,
                                        params: aiohttp.TraceRequestExceptionParams) -> None:
    """``on_request_exception``: record the exception and end the subsegment.

    Connection and DNS failures (:data:`LOCAL_EXCEPTIONS`) switch the namespace to ``local``. A
    :class:`aiohttp.ClientResponseError` carrying the server's status (``raise_for_status``) is recorded
    as that response: its status and the flags it implies (4xx error, 429 throttle, 5xx fault), with the
    exception in ``cause`` as a remote one.

    Args:
        session: the client session making the request.
        trace_config_ctx: the per-request context holding the subsegment.
        params: aiohttp's request exception parameters (method, url, headers, exception).
    """
    subsegment = _take_subsegment(trace_config_ctx)
    if subsegment is None:
        return
    try:
        if subsegment.sampled and subsegment.in_progress:
            exception = params.exception
            recorder = getattr(trace_config_ctx, 'recorder', None) or xray_recorder
            stack = innermost_frames(exception, recorder.max_trace_back)
            status = _answered_status(exception)
            subsegment.add_exception(exception, stack, status is not None)
            if status is not None:
                # The server answered: its status decides the flags, as for a returned response
                # (add_exception marked a fault, which only a 5xx status is).
                subsegment.fault = False
                subsegment.put_http_meta(http.STATUS, status)
            elif isinstance(exception, LOCAL_EXCEPTIONS):
                subsegment.namespace = LOCAL_NAMESPACE
    except Exception:  # noqa: BLE001
        log_once('aiohttp.client.exception', 'Could not record the aiohttp client exception.')
    _end(trace_config_ctx, subsegment)


def _answered_status(exception: BaseException) -> Optional[int]:
    # raise_for_status raises ClientResponseError with the response's status before on_request_end;
    # aiohttp leaves status 0 on errors that came with no response.
    if isinstance(exception, aiohttp.ClientResponseError):
        status = exception.status
        if status.__class__ is int and 100 <= status <= 999:
            return status
    return None


def _recorded_url(url: Any) -> str:
    # Neither credentials nor the query string (which often carries secrets) are recorded.
    if url.user is not None or url.password is not None:
        url = url.with_user(None)
    # The encoded form, as the server side records its URL (and as aws-xray-sdk does).
    return str(url.with_query(None).with_fragment(None))


def _take_subsegment(trace_config_ctx: SimpleNamespace) -> Any:
    # Taking the handle makes ending idempotent: aiohttp may report an exception after an end
    # callback of another TraceConfig failed, and our subsegment must not be touched twice.
    subsegment = getattr(trace_config_ctx, _HANDLE, None)
    if subsegment is not None:
        setattr(trace_config_ctx, _HANDLE, None)
    return subsegment


def _end(trace_config_ctx: SimpleNamespace, subsegment: Any) -> None:
    recorder = getattr(trace_config_ctx, 'recorder', None) or xray_recorder
    try:
        recorder.end_subsegment_by_handle(subsegment)
    except Exception:  # noqa: BLE001
        log_once('aiohttp.client.close', 'Could not end the aiohttp client subsegment.')


def aws_xray_trace_config(name: Optional[str] = None, recorder: Any = None) -> aiohttp.TraceConfig:
    """Build the ``TraceConfig`` to pass in ``ClientSession(trace_configs=[...])``.

    Args:
        name: subsegment name for every request of the session; defaults to each URL's host.
        recorder: the recorder to use; defaults to the global ``xray_recorder``.

    Returns:
        A TraceConfig whose request start, end and exception callbacks record subsegments.
    """
    trace_config = aiohttp.TraceConfig(
        trace_config_ctx_factory=partial(_RequestContext, name=name, recorder=recorder))
    trace_config.on_request_start.append(begin_subsegment)
    trace_config.on_request_end.append(end_subsegment)
    trace_config.on_request_exception.append(end_subsegment_with_exception)
    return trace_config
