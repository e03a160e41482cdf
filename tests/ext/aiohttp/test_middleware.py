"""The aiohttp server middleware, against real servers on 127.0.0.1 and the real UDP sink."""
import asyncio
import re

import aiohttp
import pytest
from aiohttp import web

from aws_like_sdk import global_sdk_config
from aws_like_sdk.core.async_context import AsyncContext
from aws_like_sdk.ext.aiohttp.middleware import middleware
from tests.ext.aiohttp.helpers import quiet, serve, traced_app, wait_segments
from tests.support.udp_sink import walk

pytestmark = pytest.mark.timeout(30)

TRACE_ID = re.compile(r'^1-[0-9a-f]{8}-[0-9a-f]{24}$')
XRAY = 'X-Amzn-Trace-Id'


class Boom(Exception):
    """The application's own error."""


routes = web.RouteTableDef()


@routes.get('/hello')
async def hello(request):
    return web.Response(text='hello')


@routes.get('/users/{user_id}')
async def user(request):
    return web.json_response({'id': request.match_info['user_id']})


@routes.get('/status/{code}')
async def status(request):
    return web.Response(status=int(request.match_info['code']), text='s')


@routes.get('/raise/{code}')
async def raise_http(request):
    raise _http_exception(int(request.match_info['code']))


@routes.get('/boom')
async def boom(request):
    raise Boom('handler failed')


@routes.get('/stream')
async def stream(request):
    response = web.StreamResponse(headers={'Content-Type': 'text/plain'})
    await response.prepare(request)
    for index in range(5):
        await response.write(b'chunk%d\n' % index)
        await asyncio.sleep(0)
    await response.write_eof()
    return response


def _http_exception(code):
    classes = {404: web.HTTPNotFound, 429: web.HTTPTooManyRequests, 500: web.HTTPInternalServerError,
               503: web.HTTPServiceUnavailable, 302: web.HTTPFound}
    if code == 302:
        return web.HTTPFound('/hello')
    return classes[code](text='raised %d' % code)


def _only_segment(segs):
    assert len(segs) == 1, segs
    return segs[0]


async def test_ok_request_records_http_block_route_and_response_header(xray, udp_sink):
    async with serve(traced_app(routes)) as server, aiohttp.ClientSession() as session:
        port = server.port
        async with session.get(server.make_url('/users/42?secret=1'), headers={'User-Agent': 'tester/1'}) as resp:
            assert resp.status == 200
            assert await resp.json() == {'id': '42'}
            response_header = resp.headers[XRAY]
    seg = _only_segment(await wait_segments(udp_sink, 1))
    assert seg['name'] == 'test-service'
    assert TRACE_ID.match(seg['trace_id'])
    assert response_header == 'Root=%s' % seg['trace_id']
    request = seg['http']['request']
    assert request['url'] == 'http://127.0.0.1:%d/users/42' % port
    assert request['method'] == 'GET'
    assert request['user_agent'] == 'tester/1'
    assert request['client_ip'] == '127.0.0.1'
    assert 'x_forwarded_for' not in request
    assert seg['http']['response'] == {'status': 200, 'content_length': len(b'{"id": "42"}')}
    assert seg['annotations']['http_route'] == '/users/{user_id}'
    assert not any(seg.get(flag) for flag in ('error', 'fault', 'throttle'))
    assert 'parent_id' not in seg


@pytest.mark.parametrize('path, code, flags', [
    ('/status/200', 200, set()),
    ('/status/404', 404, {'error'}),
    ('/status/429', 429, {'error', 'throttle'}),
    ('/status/500', 500, {'fault'}),
    ('/raise/404', 404, {'error'}),
    ('/raise/429', 429, {'error', 'throttle'}),
    ('/raise/500', 500, {'fault'}),
    ('/raise/503', 503, {'fault'}),
    ('/no/such/route', 404, {'error'}),
])
async def test_status_flags_for_returned_and_raised_responses(xray, udp_sink, path, code, flags):
    async with serve(traced_app(routes)) as server, aiohttp.ClientSession() as session:
        async with session.get(server.make_url(path)) as resp:
            assert resp.status == code
            response_header = resp.headers.get(XRAY)
    seg = _only_segment(await wait_segments(udp_sink, 1))
    assert seg['http']['response']['status'] == code
    assert {flag for flag in ('error', 'fault', 'throttle') if seg.get(flag)} == flags
    # HTTP exceptions are responses, not failures of the application: no cause.
    assert 'cause' not in seg
    assert response_header == 'Root=%s' % seg['trace_id']
    if path == '/no/such/route':
        assert 'http_route' not in seg.get('annotations', {})


async def test_redirect_raised_as_http_exception_keeps_its_status(xray, udp_sink):
    async with serve(traced_app(routes)) as server, aiohttp.ClientSession() as session:
        async with session.get(server.make_url('/raise/302'), allow_redirects=False) as resp:
            assert resp.status == 302
            assert resp.headers['Location'] == '/hello'
            assert XRAY in resp.headers
    seg = _only_segment(await wait_segments(udp_sink, 1))
    assert seg['http']['response']['status'] == 302
    assert not any(seg.get(flag) for flag in ('error', 'fault', 'throttle'))


async def test_handler_exception_is_a_fault_with_cause(xray, udp_sink):
    async with serve(traced_app(routes)) as server, aiohttp.ClientSession() as session:
        async with session.get(server.make_url('/boom')) as resp:
            assert resp.status == 500
    seg = _only_segment(await wait_segments(udp_sink, 1))
    assert seg['fault'] is True
    assert seg['http']['response']['status'] == 500
    (exc,) = seg['cause']['exceptions']
    assert exc['type'] == 'Boom'
    assert exc['message'] == 'handler failed'
    labels = [frame['label'] for frame in exc['stack']]
    assert labels[-1] == 'boom'
    # The SDK's own frames are not reported.
    assert not any(frame['path'] == 'middleware.py' for frame in exc['stack'])


def _observer(seen):
    @web.middleware
    async def observe(request, handler):
        try:
            response = await handler(request)
        except BaseException as exc:  # noqa: BLE001 - records and re-raises everything
            seen.append(('raised', exc))
            raise
        seen.append(('returned', response))
        return response
    return observe


async def test_the_application_sees_exactly_what_the_handler_produced(xray, udp_sink):
    made, seen = [], []
    error = Boom('mine')
    http_error = web.HTTPConflict(text='conflict')
    response = web.Response(text='mine')

    async def returns(request):
        made.append(response)
        return response

    async def raises(request):
        raise error

    async def raises_http(request):
        raise http_error

    async def returns_none(request):
        return None

    app = traced_app([web.get('/r', returns), web.get('/e', raises), web.get('/h', raises_http),
                      web.get('/n', returns_none)], _observer(seen))
    async with serve(app) as server, aiohttp.ClientSession() as session:
        for path in ('/r', '/e', '/h', '/n'):
            try:
                async with session.get(server.make_url(path)) as resp:
                    await resp.read()
            except aiohttp.ServerDisconnectedError:
                # aiohttp < 3.10 drops the connection when a handler returns None.
                assert path == '/n'
    assert seen[0][0] == 'returned' and seen[0][1] is response
    assert seen[1][0] == 'raised' and seen[1][1] is error
    assert error.__cause__ is None and error.__suppress_context__ is False
    assert seen[2][0] == 'raised' and seen[2][1] is http_error
    assert seen[3] == ('returned', None)
    segs = await wait_segments(udp_sink, 4)
    assert len(segs) == 4
    # A handler that returned no response still gets its segment ended, as a fault (aiohttp cannot send it).
    assert segs[3]['http']['response'] == {'status': 500} and segs[3].get('fault') is True


async def test_cancelled_request_when_the_client_goes_away(xray, udp_sink):
    started = asyncio.Event()
    seen = []

    async def slow(request):
        started.set()
        await asyncio.sleep(20)
        return web.Response(text='too late')

    app = traced_app([web.get('/slow', slow)], _observer(seen))
    async with serve(app, handler_cancellation=True) as server:
        reader, writer = await asyncio.open_connection('127.0.0.1', server.port)
        writer.write(b'GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
        await writer.drain()
        await asyncio.wait_for(started.wait(), 5)
        writer.close()
        seg = _only_segment(await wait_segments(udp_sink, 1))
    assert seg['fault'] is True
    assert seg['http']['response']['status'] == 500
    assert seg['cause']['exceptions'][0]['type'] == 'CancelledError'
    assert seen and seen[0][0] == 'raised' and isinstance(seen[0][1], asyncio.CancelledError)


async def test_streaming_response(xray, udp_sink):
    async with serve(traced_app(routes)) as server, aiohttp.ClientSession() as session:
        async with session.get(server.make_url('/stream')) as resp:
            body = await resp.read()
            assert resp.status == 200
    assert body == b''.join(b'chunk%d\n' % i for i in range(5))
    seg = _only_segment(await wait_segments(udp_sink, 1))
    assert seg['http']['response']['status'] == 200
    assert seg['annotations']['http_route'] == '/stream'
    assert not any(seg.get(flag) for flag in ('error', 'fault', 'throttle'))


async def test_incoming_trace_header_is_continued(xray, udp_sink):
    root, parent = '1-5759e988-bd862e3fe1be46a994272793', '53995c3f42cd8ad8'
    async with serve(traced_app(routes)) as server, aiohttp.ClientSession() as session:
        headers = {XRAY: 'Root=%s;Parent=%s;Sampled=1;Lineage=a:1' % (root, parent)}
        async with session.get(server.make_url('/hello'), headers=headers) as resp:
            assert resp.headers[XRAY] == 'Root=%s' % root
        headers = {XRAY: 'Root=%s;Parent=%s;Sampled=?' % (root, parent)}
        async with session.get(server.make_url('/hello'), headers=headers) as resp:
            assert resp.headers[XRAY] == 'Root=%s;Sampled=1' % root
    segs = await wait_segments(udp_sink, 2)
    assert [(s['trace_id'], s['parent_id']) for s in segs] == [(root, parent), (root, parent)]


async def test_unsampled_request_sends_nothing_but_answers_the_header(xray, udp_sink):
    root = '1-5759e988-bd862e3fe1be46a994272793'
    async with serve(traced_app(routes)) as server, aiohttp.ClientSession() as session:
        headers = {XRAY: 'Root=%s;Parent=53995c3f42cd8ad8;Sampled=0' % root}
        async with session.get(server.make_url('/hello'), headers=headers) as resp:
            assert resp.status == 200
            assert await resp.text() == 'hello'
            assert XRAY in resp.headers
    assert await quiet(udp_sink) == []


@pytest.mark.parametrize('header', ['garbage', 'Root=;Parent=;Sampled=x', ';;;==;', 'Root=1-xyz-abc;Parent=zz',
                                    'Root=1-5759e988-bd862e3fe1be46a994272793;;', '\u00e9\u00e9=\u00e9'])
async def test_malformed_trace_header_starts_a_new_trace(xray, udp_sink, header):
    async with serve(traced_app(routes)) as server, aiohttp.ClientSession() as session:
        async with session.get(server.make_url('/hello'), headers={XRAY: header}) as resp:
            assert resp.status == 200
            assert await resp.text() == 'hello'
            response_header = resp.headers[XRAY]
    seg = _only_segment(await wait_segments(udp_sink, 1))
    assert TRACE_ID.match(seg['trace_id'])
    assert response_header.startswith('Root=%s' % seg['trace_id'])
    assert 'parent_id' not in seg


async def _raw_request(port, data):
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_request_without_host_header_is_traced(xray, udp_sink):
    async with serve(traced_app(routes)) as server:
        port = server.port
        raw = await _raw_request(port, b'GET /hello?q=1 HTTP/1.0\r\nUser-Agent: raw\r\n\r\n')
    status_line, _, rest = raw.partition(b'\r\n')
    assert status_line.startswith(b'HTTP/1.0 200') or status_line.startswith(b'HTTP/1.1 200')
    assert rest.endswith(b'hello')
    assert b'x-amzn-trace-id: root=1-' in raw.lower()
    seg = _only_segment(await wait_segments(udp_sink, 1))
    assert seg['name'] == 'test-service'
    assert seg['http']['request']['url'] == 'http://127.0.0.1:%d/hello' % port
    assert seg['http']['request']['user_agent'] == 'raw'
    assert seg['http']['response']['status'] == 200


async def test_missing_host_with_dynamic_naming_falls_back_to_the_service(xray, udp_sink):
    xray.configure(dynamic_naming='*.example.com')
    async with serve(traced_app(routes)) as server:
        await _raw_request(server.port, b'GET /hello HTTP/1.0\r\n\r\n')
        async with aiohttp.ClientSession() as session:
            async with session.get(server.make_url('/hello'), headers={'Host': 'api.example.com:8080'}):
                pass
    segs = await wait_segments(udp_sink, 2)
    assert [s['name'] for s in segs] == ['test-service', 'api.example.com']
    assert segs[1]['http']['request']['url'] == 'http://api.example.com:8080/hello'


async def test_forwarded_for_and_real_peer(xray, udp_sink):
    async with serve(traced_app(routes)) as server, aiohttp.ClientSession() as session:
        async with session.get(server.make_url('/hello'),
                               headers={'X-Forwarded-For': '203.0.113.9, 10.0.0.1'}):
            pass
        # A client-supplied header that merely looks like an address is not the peer.
        async with session.get(server.make_url('/hello'), headers={'remote_addr': '198.51.100.7'}):
            pass
    first, second = await wait_segments(udp_sink, 2)
    assert first['http']['request']['client_ip'] == '203.0.113.9'
    assert first['http']['request']['x_forwarded_for'] is True
    assert second['http']['request']['client_ip'] == '127.0.0.1'
    assert 'x_forwarded_for' not in second['http']['request']


async def test_client_ip_is_request_remote_as_a_proxy_middleware_sets_it(xray, udp_sink):
    # A proxy-aware middleware before ours replaces the peer through request.clone(remote=...), the
    # documented aiohttp way; the segment records that address, not the socket's.
    @web.middleware
    async def behind_proxy(request, handler):
        return await handler(request.clone(remote='203.0.113.5'))

    async with serve(traced_app(routes, behind_proxy)) as server, aiohttp.ClientSession() as session:
        async with session.get(server.make_url('/hello')) as resp:
            assert resp.status == 200
    seg = _only_segment(await wait_segments(udp_sink, 1))
    assert seg['http']['request']['client_ip'] == '203.0.113.5'
    assert 'x_forwarded_for' not in seg['http']['request']


@pytest.mark.parametrize('returned', [None, 'text', {'not': 'a response'}])
async def test_handler_returning_no_response_is_a_fault_and_aiohttp_answers_as_usual(xray, udp_sink, returned):
    async def bad(request):
        return returned

    plain = web.Application()
    plain.router.add_get('/bad', bad)
    traced = traced_app([web.get('/bad', bad)])
    outcomes = []
    for app in (plain, traced):
        async with serve(app) as server, aiohttp.ClientSession() as session:
            try:
                async with session.get(server.make_url('/bad')) as resp:
                    outcomes.append(resp.status)
            except aiohttp.ClientError as exc:  # aiohttp 3.9 drops the connection
                outcomes.append(type(exc))
    assert outcomes[0] == outcomes[1]
    seg = _only_segment(await wait_segments(udp_sink, 1))
    assert seg['http']['response']['status'] == 500
    assert seg.get('fault') is True


async def test_sub_application_route_includes_its_prefix(xray, udp_sink):
    sub = web.Application()
    sub.router.add_get('/items/{item}', hello)
    app = web.Application(middlewares=[middleware])
    app.add_subapp('/api/', sub)
    async with serve(app) as server, aiohttp.ClientSession() as session:
        async with session.get(server.make_url('/api/items/7')) as resp:
            assert resp.status == 200
    seg = _only_segment(await wait_segments(udp_sink, 1))
    assert seg['annotations']['http_route'] == '/api/items/{item}'


async def test_concurrent_requests_get_their_own_segments_and_subsegments(xray, udp_sink):
    xray.configure(context=AsyncContext())

    async def work(request):
        tag = request.match_info['tag']
        async with xray.in_subsegment_async('work-%s' % tag) as sub:
            sub.put_annotation('tag', tag)
            await asyncio.sleep(0.01)
            async with xray.in_subsegment_async('inner-%s' % tag):
                await asyncio.sleep(0.01)
        return web.Response(text=tag)

    app = traced_app([web.get('/work/{tag}', work)])
    async with serve(app) as server, aiohttp.ClientSession() as session:
        async def call(tag):
            async with session.get(server.make_url('/work/%d' % tag)) as resp:
                return await resp.text()
        results = await asyncio.wait_for(asyncio.gather(*(call(i) for i in range(20))), 15)
    assert results == [str(i) for i in range(20)]
    segs = await wait_segments(udp_sink, 20)
    assert len(segs) == 20
    for seg in segs:
        tag = seg['http']['request']['url'].rsplit('/', 1)[1]
        (work_sub,) = seg['subsegments']
        assert work_sub['name'] == 'work-%s' % tag
        assert work_sub['annotations'] == {'tag': tag}
        (inner,) = work_sub['subsegments']
        assert inner['name'] == 'inner-%s' % tag
        assert all(entity['trace_id'] == seg['trace_id'] for entity, _ in walk(seg) if 'trace_id' in entity)


async def test_sdk_disabled_serves_untraced(xray, udp_sink):
    global_sdk_config.set_sdk_enabled(False)
    async with serve(traced_app(routes)) as server, aiohttp.ClientSession() as session:
        async with session.get(server.make_url('/hello')) as resp:
            assert resp.status == 200
            assert await resp.text() == 'hello'
            assert XRAY not in resp.headers
        async with session.get(server.make_url('/boom')) as resp:
            assert resp.status == 500
    assert await quiet(udp_sink) == []


async def test_missing_service_name_serves_untraced(xray, udp_sink):
    xray.service = None
    async with serve(traced_app(routes)) as server, aiohttp.ClientSession() as session:
        async with session.get(server.make_url('/hello')) as resp:
            assert resp.status == 200
            assert await resp.text() == 'hello'
            assert XRAY not in resp.headers
    assert await quiet(udp_sink) == []


def test_is_a_new_style_middleware():
    assert getattr(middleware, '__middleware_version__', None) == 1
    assert asyncio.iscoroutinefunction(middleware)


async def _fetch_all(server, requests):
    results = []
    async with aiohttp.ClientSession() as session:
        for method, path, headers in requests:
            async with session.request(method, server.make_url(path), headers=headers) as resp:
                results.append((resp.status, await resp.read(), resp.headers.get('Content-Type')))
    return results


async def test_responses_are_identical_with_and_without_the_middleware(xray, udp_sink):
    requests = [('GET', '/hello', {}), ('GET', '/users/%C3%BC', {}), ('GET', '/users/%ZZ', {}),
                ('GET', '/' + 'a' * 2000, {}), ('POST', '/hello', {}), ('GET', '/boom', {}),
                ('GET', '/raise/429', {}), ('GET', '/stream', {}),
                ('GET', '/hello', {XRAY: 'Root=zz;Parent=;;Sampled=maybe'}),
                ('GET', '/hello', {'X-Forwarded-For': ',,,'}), ('GET', '/hello', {'User-Agent': ''})]
    plain = web.Application()
    plain.add_routes(routes)
    async with serve(plain) as server:
        expected = await _fetch_all(server, requests)
    async with serve(traced_app(routes)) as server:
        actual = await _fetch_all(server, requests)
    assert actual == expected
    segs = await wait_segments(udp_sink, len(requests))
    assert len(segs) == len(requests)
    assert [s['http']['response']['status'] for s in segs] == [status for status, _, _ in expected]


async def test_no_tracing_inside_suppress_tracing(xray, udp_sink):
    from aws_like_sdk.core.suppression import suppress_tracing
    with suppress_tracing():
        # The server's connections and request tasks inherit the context it was started in.
        async with serve(traced_app(routes)) as server, aiohttp.ClientSession() as session:
            async with session.get(server.make_url('/hello')) as resp:
                assert await resp.text() == 'hello'
                assert XRAY not in resp.headers
    assert await quiet(udp_sink) == []


async def test_routes_that_record_keep_their_work_and_routes_that_do_not_stay_on_the_deferred_path(xray, udp_sink):
    from aws_like_sdk.ext._http import _routes_that_record

    deferred = web.RouteTableDef()

    @deferred.get('/work/{n}')
    async def work(request):
        async with xray.in_subsegment_async('work') as sub:
            sub.put_annotation('n', request.match_info['n'])
        return web.Response(text='done')

    @deferred.get('/health')
    async def health(request):
        return web.Response(text='ok')

    async with serve(traced_app(deferred)) as server, aiohttp.ClientSession() as session:
        for path in ('/health', '/work/1', '/work/2', '/health', '/work/3'):
            async with session.get(server.make_url(path)) as resp:
                assert resp.status == 200
                assert TRACE_ID.match(resp.headers[XRAY].split('=', 1)[1])
    segs = await wait_segments(udp_sink, 5)
    assert [seg['annotations']['http_route'] for seg in segs] == [
        '/health', '/work/{n}', '/work/{n}', '/health', '/work/{n}']
    for seg in segs:
        if seg['annotations']['http_route'] == '/health':
            assert 'subsegments' not in seg
            continue
        (sub,) = seg['subsegments']
        assert sub['name'] == 'work' and sub['parent_id'] == seg['id'] and sub['trace_id'] == seg['trace_id']
    assert [seg['subsegments'][0]['annotations']['n'] for seg in segs if 'subsegments' in seg] == ['1', '2', '3']
    assert '/work/{n}' in _routes_that_record and '/health' not in _routes_that_record
