"""A real HTTP server on 127.0.0.1 for the HTTP-client patches, bounded in time."""
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest


class _Handler(BaseHTTPRequestHandler):
    """``/status/<code>`` answers that status; ``/redirect`` redirects to ``/echo``; anything else echoes.

    The JSON body echoes the method, path and the ``X-Amzn-Trace-Id`` headers received, so tests can
    check what the callee saw.
    """

    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    def _reply(self, status, body=b'', headers=()):
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def _handle(self):
        length = int(self.headers.get('Content-Length') or 0)
        if length:
            self.rfile.read(length)
        path = urlsplit(self.path).path
        if path == '/redirect':
            self._reply(302, b'', [('Location', '/echo')])
            return
        status = 200
        if path.startswith('/status/'):
            status = int(path.rsplit('/', 1)[1])
        body = json.dumps({
            'method': self.command,
            'path': self.path,
            'trace_headers': self.headers.get_all('X-Amzn-Trace-Id') or [],
        }).encode()
        self._reply(status, body, [('Content-Type', 'application/json')])

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


@pytest.fixture
def http_server():
    """Base URL (``http://127.0.0.1:<port>``) of a real echo server running for the test."""
    server = _Server(('127.0.0.1', 0), _Handler)
    server.timeout = 0.5
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05},
                              name='http-echo', daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d' % server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def refused_url():
    """A loopback URL nothing listens on (the port was just bound and released)."""
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return 'http://127.0.0.1:%d/nothing' % port
