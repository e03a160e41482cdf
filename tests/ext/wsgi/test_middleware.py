"""Generic WSGI middleware: plain WSGI apps under wsgiref on loopback and driven directly."""
import http.client
import socket
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.util import setup_testing_defaults

import pytest

from aws_like_sdk.ext.wsgi import ENVIRON_KEY, XRayMiddleware, set_route

TRACE_ID = '1-5759e988-bd862e3fe1be46a994272793'


class Boom(Exception):
    pass


def plain_app(environ, start_response):
    path = environ['PATH_INFO']
    if path == '/boom':
        raise Boom('before start_response')
    if path == '/boom-late':
        start_response('200 OK', [('Content-Type', 'text/plain')])

        def body():
            yield b'partial'
            raise Boom('while streaming')
        return body()
    if path == '/stream':
        start_response('200 OK', [('Content-Type', 'text/plain')])

        def chunks():
            for _ in range(3):
                time.sleep(0.05)
                yield b'chunk'
        return chunks()
    if path.startswith('/items/'):
        set_route(environ, '/items/{id}')
    if path == '/teapot':
        start_response('418 I\'m a teapot', [('Content-Length', '0')])
        return [b'']
    body = b'hello'
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class _Server:
    def __init__(self, app):
        self.server = make_server('127.0.0.1', 0, app, server_class=WSGIServer, handler_class=_Quiet)
        self.server.timeout = 0.05
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={'poll_interval': 0.05},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def fetch(port, path, headers=None):
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
    try:
        conn.request('GET', path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


@pytest.fixture
def server(recorder):
    with _Server(XRayMiddleware(plain_app, recorder)) as srv:
        yield srv


def test_segment_per_request_under_wsgiref(server, udp_sink):
    status, headers, body = fetch(server.port, '/items/9?x=1', {'X-Amzn-Trace-Id': 'Root=%s;Sampled=?' % TRACE_ID,
                                                               'User-Agent': 'ua/1'})
    (doc,) = udp_sink.wait_for(1)
    assert status == 200 and body == b'hello'
    assert headers['X-Amzn-Trace-Id'] == 'Root=%s;Sampled=1' % TRACE_ID
    assert doc['trace_id'] == TRACE_ID and doc['name'] == 'test-service'
    assert doc['http']['request'] == {'url': 'http://127.0.0.1:%d/items/9' % server.port, 'method': 'GET',
                                      'user_agent': 'ua/1', 'client_ip': '127.0.0.1'}
    assert doc['http']['response'] == {'status': 200, 'content_length': 5}
    assert doc['annotations'] == {'http_route': '/items/{id}'}


def test_streamed_body_is_timed_until_close(server, udp_sink):
    started = time.time()
    status, _, body = fetch(server.port, '/stream')
    (doc,) = udp_sink.wait_for(1)
    assert status == 200 and body == b'chunk' * 3
    assert doc['end_time'] - doc['start_time'] >= 0.14
    assert doc['start_time'] >= started - 1
    # No Content-Length header: the bytes actually produced are recorded.
    assert doc['http']['response']['content_length'] == 15


def test_status_flags_and_fixed_name(recorder, udp_sink):
    with _Server(XRayMiddleware(plain_app, recorder, name='fixed-name')) as srv:
        status, _, _ = fetch(srv.port, '/teapot')
        (doc,) = udp_sink.wait_for(1)
    assert status == 418
    assert doc['name'] == 'fixed-name' and doc['error'] is True and doc['http']['response']['status'] == 418


def test_exception_before_start_response(recorder, udp_sink):
    environ = {}
    setup_testing_defaults(environ)
    environ['PATH_INFO'] = '/boom'
    app = XRayMiddleware(plain_app, recorder)
    with pytest.raises(Boom, match='before start_response'):
        app(environ, lambda *a: None)
    (doc,) = udp_sink.wait_for(1)
    assert doc['fault'] is True and doc['http']['response']['status'] == 500
    assert doc['cause']['exceptions'][0]['type'] == 'Boom'


def test_exception_while_streaming_is_recorded_and_reraised(recorder, udp_sink):
    environ = {}
    setup_testing_defaults(environ)
    environ['PATH_INFO'] = '/boom-late'
    started = []
    body = XRayMiddleware(plain_app, recorder)(environ, lambda status, headers, exc_info=None: started.append(status))
    chunks = []
    with pytest.raises(Boom, match='while streaming'):
        for chunk in body:
            chunks.append(chunk)
    body.close()
    (doc,) = udp_sink.wait_for(1)
    assert chunks == [b'partial'] and started == ['200 OK']
    assert doc['fault'] is True and doc['http']['response']['status'] == 200
    assert doc['cause']['exceptions'][0]['message'] == 'while streaming'


def test_client_disconnect_mid_stream_still_ends_segment(recorder, udp_sink):
    closed = threading.Event()

    def endless(environ, start_response):
        start_response('200 OK', [('Content-Type', 'application/octet-stream')])

        def gen():
            try:
                for _ in range(2000):
                    time.sleep(0.002)
                    yield b'x' * 65536
            finally:
                closed.set()
        return gen()

    with _Server(XRayMiddleware(endless, recorder)) as srv:
        sock = socket.create_connection(('127.0.0.1', srv.port), timeout=5)
        sock.sendall(b'GET /endless HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
        sock.recv(1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
        sock.close()  # RST: the server's next write fails
        assert closed.wait(5)
        (doc,) = udp_sink.wait_for(1)
    assert doc['http']['response']['status'] == 200
    assert doc['in_progress'] is False


def test_handle_is_reachable_from_the_app_and_no_double_segment(recorder, udp_sink):
    seen = []

    def app(environ, start_response):
        seen.append(environ[ENVIRON_KEY])
        start_response('204 No Content', [])
        return []

    wrapped = XRayMiddleware(XRayMiddleware(app, recorder), recorder)
    environ = {}
    setup_testing_defaults(environ)
    body = wrapped(environ, lambda *a: None)
    list(body)
    body.close()
    (doc,) = udp_sink.wait_for(1)
    assert len(seen) == 1 and seen[0].entity.id == doc['id']
    assert udp_sink.settle(quiet=0.1) == [doc]


def test_missing_host_and_odd_environ(recorder, udp_sink):
    environ = {'REQUEST_METHOD': 'POST', 'wsgi.url_scheme': 'https', 'SERVER_NAME': 'internal',
               'SERVER_PORT': '8443', 'PATH_INFO': '/caf\xc3\xa9', 'HTTP_X_AMZN_TRACE_ID': 'garbage;;'}
    out = []
    body = XRayMiddleware(plain_app, recorder)(environ, lambda s, h, e=None: out.append((s, h)))
    assert list(body) == [b'hello']
    body.close()
    (doc,) = udp_sink.wait_for(1)
    assert doc['http']['request']['url'] == 'https://internal:8443/caf%C3%A9'
    assert doc['http']['request']['method'] == 'POST' and 'client_ip' not in doc['http']['request']
    assert ('X-Amzn-Trace-Id', 'Root=%s' % doc['trace_id']) in out[0][1]


def test_app_trace_header_is_not_duplicated(recorder, udp_sink):
    def app(environ, start_response):
        start_response('200 OK', [('x-amzn-trace-id', 'mine')])
        return [b'']

    environ = {}
    setup_testing_defaults(environ)
    out = []
    body = XRayMiddleware(app, recorder)(environ, lambda s, h, e=None: out.append(h))
    body.close()
    assert out == [[('x-amzn-trace-id', 'mine')]]


def test_disabled_sdk_passes_through(recorder, udp_sink):
    from aws_like_sdk import global_sdk_config
    global_sdk_config.set_sdk_enabled(False)
    environ = {}
    setup_testing_defaults(environ)
    body = XRayMiddleware(plain_app, recorder)(environ, lambda *a: None)
    assert list(body) == [b'hello']
    body.close()
    assert udp_sink.settle(quiet=0.1) == []
