"""ASGI middleware with Starlette and FastAPI: through their TestClient and through uvicorn on loopback."""
import asyncio
import http.client
import socket
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient

from aws_like_sdk.ext.asgi import SCOPE_KEY, XRayMiddleware

TRACE_ID = '1-5759e988-bd862e3fe1be46a994272793'


class Boom(Exception):
    pass


def build_starlette(recorder):
    async def user(request):
        with recorder.in_subsegment('load-user'):
            await asyncio.sleep(0)
        return JSONResponse({'id': int(request.path_params['user_id'])})

    async def boom(request):
        raise Boom('handler failed')

    async def limited(request):
        return PlainTextResponse('slow down', status_code=429)

    async def stream(request):
        async def gen():
            for _ in range(3):
                await asyncio.sleep(0.03)
                yield b'part'
        return StreamingResponse(gen())

    async def echo(websocket):
        await websocket.accept()
        await websocket.send_text('hello %s' % (SCOPE_KEY in websocket.scope))
        await websocket.close()

    async def inner(request):
        return PlainTextResponse('inner')

    routes = [Route('/users/{user_id:int}', user), Route('/boom', boom), Route('/limited', limited),
              Route('/stream', stream), WebSocketRoute('/ws', echo),
              Mount('/api', routes=[Route('/things/{name}', inner)])]
    return Starlette(routes=routes)


@pytest.fixture
def app(recorder):
    return XRayMiddleware(build_starlette(recorder), recorder)


def test_starlette_request_segment(app, udp_sink):
    with TestClient(app, base_url='http://api.example.com') as client:
        resp = client.get('/users/42?q=secret', headers={'X-Amzn-Trace-Id': 'Root=%s;Parent=53995c3f42cd8ad8' % TRACE_ID,
                                                          'User-Agent': 'ua'})
    assert resp.json() == {'id': 42}
    (doc,) = udp_sink.wait_for(1)
    assert doc['trace_id'] == TRACE_ID and doc['parent_id'] == '53995c3f42cd8ad8'
    assert resp.headers['x-amzn-trace-id'] == 'Root=%s' % TRACE_ID
    assert doc['http']['request'] == {'url': 'http://api.example.com/users/42', 'method': 'GET',
                                      'user_agent': 'ua', 'client_ip': 'testclient'}
    assert doc['http']['response'] == {'status': 200, 'content_length': len(resp.content)}
    assert doc['annotations'] == {'http_route': '/users/{user_id:int}'}
    assert [s['name'] for s in doc['subsegments']] == ['load-user']


def test_mounted_route_gets_prefix(app, udp_sink):
    with TestClient(app) as client:
        assert client.get('/api/things/x').text == 'inner'
    (doc,) = udp_sink.wait_for(1)
    assert doc['annotations'] == {'http_route': '/api/things/{name}'}


def test_handler_exception_records_fault_and_reraises(app, udp_sink):
    with TestClient(app) as client:
        with pytest.raises(Boom, match='handler failed'):
            client.get('/boom')
    (doc,) = udp_sink.wait_for(1)
    assert doc['fault'] is True and doc['http']['response']['status'] == 500
    exc = doc['cause']['exceptions'][0]
    assert exc['type'] == 'Boom' and any(f['label'] == 'boom' for f in exc['stack'])


def test_server_error_response_without_raise(app, udp_sink):
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get('/boom').status_code == 500
    (doc,) = udp_sink.wait_for(1)
    assert doc['fault'] is True and doc['http']['response']['status'] == 500


def test_throttle_and_unrouted(app, udp_sink):
    with TestClient(app) as client:
        assert client.get('/limited').status_code == 429
        assert client.get('/nowhere').status_code == 404
    docs = sorted(udp_sink.wait_for(2), key=lambda d: d['http']['response']['status'])
    assert docs[0]['http']['response']['status'] == 404 and docs[0]['error'] is True
    assert 'annotations' not in docs[0]
    assert docs[1]['throttle'] is True and docs[1]['error'] is True


def test_websocket_and_lifespan_pass_through_untouched(recorder, udp_sink):
    seen = []

    async def raw_app(scope, receive, send):
        seen.append((scope['type'], receive, send, dict(scope)))
        if scope['type'] == 'lifespan':
            while True:
                message = await receive()
                if message['type'] == 'lifespan.startup':
                    await send({'type': 'lifespan.startup.complete'})
                elif message['type'] == 'lifespan.shutdown':
                    await send({'type': 'lifespan.shutdown.complete'})
                    return
        elif scope['type'] == 'websocket':
            await receive()
            await send({'type': 'websocket.accept'})
            await send({'type': 'websocket.close'})

    middleware = XRayMiddleware(raw_app, recorder)
    outer = []

    async def capture_app(scope, receive, send):
        outer.append((receive, send))
        await middleware(scope, receive, send)

    with TestClient(capture_app) as client:
        with client.websocket_connect('/ws'):
            pass
    assert [s[0] for s in seen] == ['lifespan', 'websocket']
    for (kind, receive, send, scope), (outer_receive, outer_send) in zip(seen, outer):
        assert receive is outer_receive and send is outer_send and SCOPE_KEY not in scope
    assert udp_sink.settle(quiet=0.1) == []


def test_starlette_websocket_route(app, udp_sink):
    with TestClient(app) as client:
        with client.websocket_connect('/ws') as ws:
            assert ws.receive_text() == 'hello False'
    assert udp_sink.settle(quiet=0.1) == []


def test_fastapi_app(recorder, udp_sink):
    api = FastAPI()

    @api.get('/orders/{order_id}')
    async def order(order_id: int):
        return {'order': order_id}

    @api.get('/sync')
    def sync_route():
        # Runs in a worker thread: the request segment is still the parent.
        with recorder.in_subsegment('in-thread'):
            return {'ok': True}

    app = XRayMiddleware(api, recorder, name='orders-api')
    with TestClient(app) as client:
        assert client.get('/orders/5').json() == {'order': 5}
        assert client.get('/sync').json() == {'ok': True}
    docs = udp_sink.wait_for(2)
    by_route = {d['annotations']['http_route']: d for d in docs}
    assert set(by_route) == {'/orders/{order_id}', '/sync'}
    assert all(d['name'] == 'orders-api' for d in docs)
    assert [s['name'] for s in by_route['/sync']['subsegments']] == ['in-thread']


def test_missing_host_header_and_no_client(recorder, udp_sink):
    sent = []

    async def app(scope, receive, send):
        await send({'type': 'http.response.start', 'status': 200, 'headers': ((b'content-length', b'2'),)})
        await send({'type': 'http.response.body', 'body': b'ok'})

    async def run():
        async def receive():
            return {'type': 'http.request', 'body': b'', 'more_body': False}

        async def send(message):
            sent.append(message)
        scope = {'type': 'http', 'asgi': {'version': '3.0'}, 'http_version': '1.1', 'method': 'GET',
                 'scheme': 'http', 'path': '/x', 'raw_path': b'/x', 'query_string': b'', 'root_path': '',
                 'headers': [(b'x-amzn-trace-id', b';;;bad')], 'server': None, 'client': None}
        await XRayMiddleware(app, recorder)(scope, receive, send)

    asyncio.run(run())
    (doc,) = udp_sink.wait_for(1)
    assert doc['name'] == 'test-service' and doc['http']['request']['url'] == 'http://localhost/x'
    assert doc['http']['response'] == {'status': 200, 'content_length': 2}
    assert list(sent[0]['headers'])[-1] == (b'x-amzn-trace-id', ('Root=%s' % doc['trace_id']).encode())


def test_disabled_sdk_passes_through(app, udp_sink):
    from aws_like_sdk import global_sdk_config
    global_sdk_config.set_sdk_enabled(False)
    with TestClient(app) as client:
        assert client.get('/users/1').json() == {'id': 1}
        with pytest.raises(Boom):
            client.get('/boom')
    assert udp_sink.settle(quiet=0.1) == []


class _Uvicorn:
    """uvicorn on an ephemeral loopback port in a thread, with bounded startup and shutdown."""

    def __init__(self, app):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level='warning', lifespan='on', timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={'sockets': [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, 'uvicorn did not start'
            assert self.thread.is_alive(), 'uvicorn exited'
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def test_through_uvicorn_on_loopback(app, udp_sink):
    with _Uvicorn(app) as srv:
        conn = http.client.HTTPConnection('127.0.0.1', srv.port, timeout=5)
        conn.request('GET', '/users/3', headers={'X-Amzn-Trace-Id': 'Root=%s;Sampled=1' % TRACE_ID})
        resp = conn.getresponse()
        body = resp.read()
        header = resp.getheader('X-Amzn-Trace-Id')
        conn.request('GET', '/stream')
        resp2 = conn.getresponse()
        streamed = resp2.read()
        conn.close()
        docs = udp_sink.wait_for(2)
    assert body == b'{"id":3}' and header == 'Root=%s' % TRACE_ID and streamed == b'part' * 3
    by_route = {d['annotations']['http_route']: d for d in docs}
    assert by_route['/users/{user_id:int}']['trace_id'] == TRACE_ID
    assert by_route['/users/{user_id:int}']['http']['request']['url'] == 'http://127.0.0.1:%d/users/3' % srv.port
    stream_doc = by_route['/stream']
    assert stream_doc['end_time'] - stream_doc['start_time'] >= 0.08
    assert stream_doc['http']['response']['content_length'] == 12


def test_client_disconnect_mid_stream_under_uvicorn(recorder, udp_sink):
    finished = threading.Event()

    async def endless(request):
        async def gen():
            try:
                for _ in range(1000):
                    await asyncio.sleep(0.005)
                    yield b'x' * 65536
            finally:
                finished.set()
        return StreamingResponse(gen())

    app = XRayMiddleware(Starlette(routes=[Route('/endless', endless)]), recorder)
    with _Uvicorn(app) as srv:
        sock = socket.create_connection(('127.0.0.1', srv.port), timeout=5)
        sock.sendall(b'GET /endless HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
        sock.recv(1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
        sock.close()
        assert finished.wait(5)
        (doc,) = udp_sink.wait_for(1)
    assert doc['http']['response']['status'] == 200 and doc['in_progress'] is False
    assert doc['annotations'] == {'http_route': '/endless'}


def test_fastapi_add_middleware_form(recorder, udp_sink):
    api = FastAPI()

    @api.get('/ping')
    async def ping():
        return 'pong'

    api.add_middleware(XRayMiddleware, recorder=recorder, name='added')
    with TestClient(api) as client:
        assert client.get('/ping').json() == 'pong'
    (doc,) = udp_sink.wait_for(1)
    assert doc['name'] == 'added' and doc['annotations'] == {'http_route': '/ping'}
