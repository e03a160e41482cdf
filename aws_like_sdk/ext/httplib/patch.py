"""One ``remote`` subsegment per HTTP exchange made through ``http.client``.

Upstream records up to three subsegments per call (send, getresponse, read). Here one subsegment spans
the whole exchange on a connection:

* it begins when the request line is written (``HTTPConnection.putrequest``, which ``request()``,
  ``urllib.request`` and urllib3 all go through) and the trace header is added right after it, so the
  callee's parent is this subsegment;
* a later ``X-Amzn-Trace-Id`` header for the same request is dropped, as upstream's injection also wins;
* an exception while sending or waiting for the response (connection refused, timeout, ...) is recorded
  and ends it;
* ``getresponse`` records the status; the subsegment then ends when the body has been read to the end or
  the response is closed. Bodies that are empty by definition (HEAD, 204, 304) end it at once.

So that an abandoned response cannot keep its segment from being emitted, a response that is garbage
collected unread ends the subsegment at the time its headers arrived, and a connection closed (or reused)
before its response was read ends its pending subsegment too.

The subsegment is not made the current entity: application code that runs between ``request()`` and
``read()`` keeps its own parent. Calls made inside another patched client (requests, httpx, botocore) are
suppressed, so a call gives one subsegment whichever layers are patched.
"""
import fnmatch
import http.client
import logging
import time
import weakref
from collections import namedtuple
from typing import Any, Iterable, List, Optional, Union

from ...core import xray_recorder
from ...core.models import http as http_keys
from ...core.suppression import is_suppressed
from .. import _outgoing
from .._patching import CallSites, guard, log_once
from ..util import get_hostname, strip_url

log = logging.getLogger(__name__)

__all__ = ['patch', 'unpatch', 'add_ignored', 'reset_ignored', 'PATCH_FLAG']

PATCH_FLAG = '__xray_patched'

_EXCHANGE_ATTR = '_aws_like_sdk_exchange'
_TRACE_HEADER = http_keys.XRAY_HEADER.lower()

_IgnoreRule = namedtuple('_IgnoreRule', ['subclass', 'hostname', 'urls'])

# botocore's own X-Ray sampling calls (made by users who poll sampling rules themselves).
_DEFAULT_IGNORED = (_IgnoreRule('botocore.awsrequest.AWSHTTPConnection', None,
                                ('/GetSamplingRules', '/SamplingTargets')),)
_ignored: List[_IgnoreRule] = list(_DEFAULT_IGNORED)



def add_ignored(subclass: Union[None, str, type] = None, hostname: Optional[str] = None,
                urls: Optional[Iterable[str]] = None) -> None:
    """Stop tracing the requests a rule matches; a rule matches when all the parts it gives match.

    Args:
        subclass: connection class, or its dotted name (``'botocore.awsrequest.AWSHTTPConnection'``).
        hostname: a glob (``fnmatch``) matched against the request host, e.g. ``'*.internal'``.
        urls: request paths (without query string) matched exactly, e.g. ``['/health']``.
    """
    if subclass is None and hostname is None and urls is None:
        log.warning('add_ignored() called without subclass, hostname or urls; nothing to ignore.')
        return
    if isinstance(urls, str):
        urls = (urls,)
    _ignored.append(_IgnoreRule(subclass, hostname, tuple(urls) if urls is not None else None))


def reset_ignored() -> None:
    """Forget the rules given to :func:`add_ignored`, keeping the default one (botocore's X-Ray calls)."""
    _ignored[:] = _DEFAULT_IGNORED


def patch() -> None:
    """Trace every HTTP exchange made through ``http.client``. Idempotent."""
    _SITES.patch()
    setattr(http.client, PATCH_FLAG, True)


def unpatch() -> None:
    """Undo :func:`patch`; exchanges already begun still end normally. Idempotent."""
    _SITES.unpatch()
    if hasattr(http.client, PATCH_FLAG):
        delattr(http.client, PATCH_FLAG)


class _Exchange:
    """One request/response on a connection and the subsegment recording it."""

    __slots__ = ('recorder', 'subsegment', 'header_value', 'header_sent', 'responded_at', 'finalizer', 'ended')

    def __init__(self, recorder: Any, subsegment: Any, header_value: Optional[str]) -> None:
        self.recorder = recorder
        self.subsegment = subsegment
        self.header_value = header_value
        self.header_sent = False
        self.responded_at: Optional[float] = None
        self.finalizer: Optional[weakref.finalize] = None
        self.ended = False

    def fail(self, exception: BaseException) -> None:
        """Record ``exception`` (call from inside the ``except`` block) and end."""
        if self.ended:
            return
        try:
            _outgoing.record_failure(self.subsegment, exception, max_trace_back=self.recorder.max_trace_back)
        except Exception:  # noqa: BLE001
            log_once('httplib.fail', 'Recording an http.client failure failed.')
        self.end()

    def respond(self, response: Any) -> None:
        """Record the response status; end now if there is no body to wait for, else when it is consumed."""
        self.responded_at = time.time()
        _outgoing.record_response(self.subsegment, getattr(response, 'status', None),
                                  response.getheader('Content-Length') if hasattr(response, 'getheader') else None)
        if getattr(response, 'fp', None) is None or getattr(response, 'length', None) == 0:
            self.end()
            return
        response.__dict__[_EXCHANGE_ATTR] = self
        finalizer = weakref.finalize(response, _end_abandoned, self)
        finalizer.atexit = False
        self.finalizer = finalizer

    def end(self, abandoned: bool = False) -> None:
        """End the subsegment once; ``abandoned`` ends it at the time the response headers arrived."""
        if self.ended:
            return
        self.ended = True
        if self.finalizer is not None:
            self.finalizer.detach()
        end_time = self.responded_at if abandoned else None
        try:
            self.recorder.end_subsegment_by_handle(self.subsegment, end_time)
        except Exception:  # noqa: BLE001
            log_once('httplib.end', 'Ending an http.client subsegment failed.')


def _end_abandoned(exchange: _Exchange) -> None:
    # Runs from the garbage collector, where an exception would only be printed to stderr.
    try:
        exchange.end(abandoned=True)
    except Exception:  # noqa: BLE001
        log_once('httplib.abandoned', 'Ending an abandoned http.client subsegment failed.')


def _full_url(connection: Any, target: Any) -> str:
    if isinstance(target, bytes):
        target = target.decode('latin-1')
    target = str(target)
    if target.startswith(('http://', 'https://')):
        return target  # absolute form, sent to a forward proxy
    host = getattr(connection, '_tunnel_host', None) or connection.host
    port = getattr(connection, '_tunnel_port', None) if getattr(connection, '_tunnel_host', None) else connection.port
    secure = isinstance(connection, http.client.HTTPSConnection) or getattr(connection, 'default_port', None) == 443
    scheme = 'https' if secure else 'http'
    if ':' in host and not host.startswith('['):
        host = '[%s]' % host
    netloc = host if port in (None, 443 if secure else 80) else '%s:%s' % (host, port)
    if not target.startswith('/'):
        target = '/' + target
    return '%s://%s%s' % (scheme, netloc, target)


def _class_name(connection: Any) -> str:
    cls = type(connection)
    return '%s.%s' % (cls.__module__, cls.__qualname__)


def _is_ignored(connection: Any, hostname: str, path: str) -> bool:
    for rule in _ignored:
        if rule.subclass is not None:
            if isinstance(rule.subclass, type):
                if not isinstance(connection, rule.subclass):
                    continue
            elif _class_name(connection) != rule.subclass:
                continue
        if rule.hostname is not None and not fnmatch.fnmatch(hostname, rule.hostname):
            continue
        if rule.urls is not None and path not in rule.urls:
            continue
        return True
    return False


def _path_of(url: str) -> str:
    without_query = strip_url(url)
    after_scheme = without_query.partition('://')[2]
    return '/' + after_scheme.partition('/')[2]


def _end_pending(connection: Any) -> None:
    exchange = connection.__dict__.pop(_EXCHANGE_ATTR, None)
    if exchange is not None:
        exchange.end()


@guard
def _traced_putrequest(wrapped, instance, args, kwargs):
    # A request sent before whose response was never asked for ends before a new one starts.
    _end_pending(instance)
    if is_suppressed():
        return wrapped(*args, **kwargs)
    recorder = xray_recorder
    target = args[1] if len(args) > 1 else kwargs.get('url')
    method = args[0] if args else kwargs.get('method')
    url = _full_url(instance, target)
    hostname = get_hostname(url)
    if _is_ignored(instance, hostname, _path_of(url)) or _outgoing.parent_entity(recorder) is None:
        return wrapped(*args, **kwargs)
    subsegment = _outgoing.begin_detached_subsegment(recorder, hostname)
    if subsegment is None:
        return wrapped(*args, **kwargs)
    exchange = _Exchange(recorder, subsegment, _outgoing.trace_header_value(subsegment))
    try:
        _outgoing.record_request(subsegment, method, url)
    except Exception:  # noqa: BLE001
        log_once('httplib.request', 'Recording an http.client request failed.')
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        exchange.fail(exc)
        raise
    instance.__dict__[_EXCHANGE_ATTR] = exchange
    if exchange.header_value is not None:
        instance.putheader(http_keys.XRAY_HEADER, exchange.header_value)
    return result


@guard
def _traced_putheader(wrapped, instance, args, kwargs):
    # Follow-up wrappers act only on an exchange begun unsuppressed, and must finish it even when the
    # rest of the exchange happens in a suppressed context; hence no is_suppressed() check here.
    exchange = instance.__dict__.get(_EXCHANGE_ATTR)
    if exchange is not None and args:
        name = args[0]
        if isinstance(name, bytes):
            name = name.decode('latin-1')
        if isinstance(name, str) and name.lower() == _TRACE_HEADER:
            if exchange.header_sent:
                log.debug('Dropping a second %s header: the http.client subsegment is the parent.', name)
                return None
            exchange.header_sent = True  # the first one is ours, written right after the request line
    return wrapped(*args, **kwargs)


@guard
def _traced_io(wrapped, instance, args, kwargs):
    exchange = instance.__dict__.get(_EXCHANGE_ATTR)
    if exchange is None:
        return wrapped(*args, **kwargs)
    try:
        return wrapped(*args, **kwargs)
    except BaseException as exc:
        instance.__dict__.pop(_EXCHANGE_ATTR, None)
        exchange.fail(exc)
        raise


@guard
def _traced_getresponse(wrapped, instance, args, kwargs):
    # Detach first: getresponse() itself may close() the connection once the response has begun.
    exchange = instance.__dict__.pop(_EXCHANGE_ATTR, None)
    if exchange is None:
        return wrapped(*args, **kwargs)
    try:
        response = wrapped(*args, **kwargs)
    except BaseException as exc:
        exchange.fail(exc)
        raise
    try:
        exchange.respond(response)
    except Exception:  # noqa: BLE001
        log_once('httplib.response', 'Recording an http.client response failed.')
        exchange.end()
    return response


@guard
def _traced_close(wrapped, instance, args, kwargs):
    try:
        return wrapped(*args, **kwargs)
    finally:
        _end_pending(instance)


@guard
def _traced_close_conn(wrapped, instance, args, kwargs):
    try:
        return wrapped(*args, **kwargs)
    finally:
        exchange = instance.__dict__.pop(_EXCHANGE_ATTR, None)
        if exchange is not None:
            exchange.end()


_SITES = CallSites(('http.client', 'HTTPConnection.putrequest', _traced_putrequest),
                   ('http.client', 'HTTPConnection.putheader', _traced_putheader),
                   ('http.client', 'HTTPConnection.endheaders', _traced_io),
                   ('http.client', 'HTTPConnection.send', _traced_io),
                   ('http.client', 'HTTPConnection.getresponse', _traced_getresponse),
                   ('http.client', 'HTTPConnection.close', _traced_close),
                   ('http.client', 'HTTPResponse._close_conn', _traced_close_conn))
