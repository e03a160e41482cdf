"""The daemon's HTTP side on the TCP address: sampling API, local PutTraceSegments, viewer, JSON API."""
import http.server
import ipaddress
import json
import logging
import os
import queue
import re
import socket
import urllib.parse
from typing import Any, Callable, Dict, Optional, Tuple

from . import api
from .address import Address
from .sampling import SamplingService
from .stats import Counters
from .store import Store

log = logging.getLogger(__name__)

STATIC_DIR = os.path.join(os.path.dirname(__file__), 'static')
MAX_BODY = 1024 * 1024
_TRACE_PATH = re.compile(r'^/(?:api/)?traces/(1-[0-9a-fA-F]{8}-[0-9a-fA-F]{24})$')
_CONTENT_TYPES = {'.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
                  '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png'}
# Pages get nothing from elsewhere and run only our own script: a stored XSS payload
# that somehow reached the DOM as markup still could not execute.
_SECURITY_HEADERS = {
    'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
}
_PAGES = {'/': 'index.html', '/map': 'map.html'}


def _load_static() -> Dict[str, bytes]:
    files = {}
    for name in os.listdir(STATIC_DIR):
        if os.path.splitext(name)[1] in _CONTENT_TYPES:
            with open(os.path.join(STATIC_DIR, name), 'rb') as handle:
                files[name] = handle.read()
    return files


class DaemonHTTPServer(http.server.ThreadingHTTPServer):
    """HTTP server holding what the handlers need.

    Args:
        address: where to listen (port 0 picks a free port).
        store: the trace store (read side).
        sampling: the sampling service.
        counters: the daemon's counters.
        ingest: the ingest queue, for local PutTraceSegments.
        stats: callable returning the ``/api/stats`` body.
        check_host: refuse requests whose Host is not a loopback name (DNS rebinding).
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: Address, store: Store, sampling: SamplingService, counters: Counters,
                 ingest: 'queue.Queue[Optional[bytes]]', stats: Callable[[], Dict[str, Any]],
                 check_host: bool = True) -> None:
        if ':' in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        self.store = store
        self.sampling = sampling
        self.counters = counters
        self.ingest = ingest
        self.stats = stats
        self.check_host = check_host
        self.static = _load_static()


def _host_is_local(host_header: str) -> bool:
    host = host_header.strip()
    if host.startswith('['):
        host = host[1:host.find(']')] if ']' in host else host
    else:
        host = host.rsplit(':', 1)[0] if host.count(':') == 1 else host
    if host.lower() in ('localhost', 'localhost.'):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Handler(http.server.BaseHTTPRequestHandler):
    """Routes requests; every response carries the security headers."""

    server: DaemonHTTPServer
    server_version = 'aws-like-sdk-daemon'
    sys_version = ''
    protocol_version = 'HTTP/1.1'

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug('%s - ' + format, self.address_string(), *args)

    # -- responses ----------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, extra: Optional[Dict[str, str]] = None) -> None:
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        for key, value in _SECURITY_HEADERS.items():
            self.send_header(key, value)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        body = json.dumps(data, separators=(',', ':'), default=str).encode('utf-8')
        self._send(status, body, 'application/json', {'Cache-Control': 'no-store'})

    def _error(self, status: int, kind: str, message: str) -> None:
        # The rest-json error shape botocore understands.
        self._json(status, {'__type': kind, 'message': message})

    def _allowed(self) -> bool:
        if not self.server.check_host:
            return True
        if not _host_is_local(self.headers.get('Host', '')):
            self._error(403, 'ForbiddenException', 'Host must be a loopback name')
            return False
        origin = self.headers.get('Origin')
        if origin and origin != 'null':
            netloc = urllib.parse.urlsplit(origin).netloc
            if not _host_is_local(netloc):
                self._error(403, 'ForbiddenException', 'cross-origin request refused')
                return False
        return True

    # -- GET ----------------------------------------------------------------------------

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        if not self._allowed():
            return
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        try:
            self._route_get(path, params)
        except api.BadRequest as exc:
            self._error(400, 'InvalidRequestException', str(exc))
        except Exception:
            log.exception('GET %s failed', path)
            self._error(500, 'InternalFailure', 'internal error, see the daemon log')

    def _route_get(self, path: str, params: Dict[str, str]) -> None:
        store = self.server.store
        if path in _PAGES or path.startswith('/traces/'):
            self._static(_PAGES.get(path, 'trace.html'))
        elif path.startswith('/static/'):
            self._static(path[len('/static/'):])
        elif path == '/api/traces':
            self._json(200, api.list_traces(store, params))
        elif path.startswith('/api/traces/'):
            match = _TRACE_PATH.match(path)
            trace = api.get_trace(store, match.group(1)) if match else None
            if trace is None:
                self._error(404, 'ResourceNotFoundException', 'no such trace')
            else:
                self._json(200, trace)
        elif path == '/api/services':
            self._json(200, {'services': store.services()})
        elif path == '/api/servicemap':
            self._json(200, api.service_map(store, params))
        elif path == '/api/stats':
            self._json(200, self.server.stats())
        elif path == '/api/sampling/rules':
            self._json(200, {'rules': self.server.sampling.rules(),
                             'statistics': self.server.sampling.statistics()})
        else:
            self._error(404, 'NotFoundException', 'no such page')

    def _static(self, name: str) -> None:
        body = self.server.static.get(name)
        if body is None:
            self._error(404, 'NotFoundException', 'no such file')
            return
        self._send(200, body, _CONTENT_TYPES[os.path.splitext(name)[1]], {'Cache-Control': 'no-cache'})

    # -- POST ---------------------------------------------------------------------------

    def _read_json(self) -> Tuple[bool, Any]:
        try:
            length = int(self.headers.get('Content-Length') or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._error(413 if length > MAX_BODY else 400, 'InvalidRequestException', 'bad Content-Length')
            self.close_connection = True
            return False, None
        raw = self.rfile.read(length) if length else b''
        try:
            data = json.loads(raw) if raw.strip() else {}
        except (ValueError, RecursionError):
            self._error(400, 'InvalidRequestException', 'body is not JSON')
            return False, None
        if not isinstance(data, dict):
            self._error(400, 'InvalidRequestException', 'body must be a JSON object')
            return False, None
        return True, data

    def do_POST(self) -> None:  # noqa: N802
        if not self._allowed():
            return
        path = urllib.parse.urlsplit(self.path).path
        ok, data = self._read_json()
        if not ok:
            return
        try:
            if path == '/GetSamplingRules':
                self._json(200, self.server.sampling.get_sampling_rules(data))
            elif path == '/SamplingTargets':
                self._json(200, self.server.sampling.get_sampling_targets(data))
            elif path == '/TraceSegments':
                self._json(200, self._put_trace_segments(data))
            elif path == '/TelemetryRecords':
                self._json(200, {})
            else:
                self._error(404, 'UnknownOperationException', 'the local daemon does not serve %s' % path[:100])
        except ValueError as exc:
            self._error(400, 'InvalidRequestException', str(exc))
        except Exception:
            log.exception('POST %s failed', path)
            self._error(500, 'InternalFailure', 'internal error, see the daemon log')

    def _put_trace_segments(self, data: Dict[str, Any]) -> Dict[str, Any]:
        documents = data.get('TraceSegmentDocuments')
        if not isinstance(documents, list):
            raise ValueError('TraceSegmentDocuments must be a list of strings')
        unprocessed = []
        for text in documents:
            if not isinstance(text, str):
                unprocessed.append({'ErrorCode': 'InvalidSegment', 'Message': 'not a string'})
                continue
            try:
                self.server.ingest.put_nowait(text.encode('utf-8'))
                self.server.counters.add('received.api')
            except queue.Full:
                self.server.counters.add('dropped.queue_full')
                unprocessed.append({'ErrorCode': 'ThrottledException', 'Message': 'ingest queue full'})
        return {'UnprocessedTraceSegments': unprocessed}
