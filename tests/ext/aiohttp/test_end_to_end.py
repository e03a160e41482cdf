"""A traced aiohttp app calling another traced aiohttp app on loopback: one trace, correct parents."""
import aiohttp
import pytest
from aiohttp import web

from aws_like_sdk.core.async_context import AsyncContext
from aws_like_sdk.ext.aiohttp.client import aws_xray_trace_config
from tests.ext.aiohttp.helpers import serve, traced_app, wait_segments

pytestmark = pytest.mark.timeout(30)

SESSION = web.AppKey('session', aiohttp.ClientSession) if hasattr(web, 'AppKey') else 'session'
BACKEND = web.AppKey('backend', str) if hasattr(web, 'AppKey') else 'backend'


async def backend_handler(request):
    return web.json_response({'trace_header': request.headers.get('X-Amzn-Trace-Id')})


async def frontend_handler(request):
    async with request.app[SESSION].get(request.app[BACKEND] + '/data?page=2') as resp:
        payload = await resp.json()
    return web.json_response(payload, status=resp.status)


async def _frontend(backend_url):
    app = traced_app([web.get('/front', frontend_handler)])
    app[BACKEND] = backend_url
    session = aiohttp.ClientSession(trace_configs=[aws_xray_trace_config(name='backend')])
    app[SESSION] = session

    async def close_session(app):
        await session.close()

    app.on_cleanup.append(close_session)
    return app


async def test_two_apps_one_trace(xray, udp_sink):
    xray.configure(context=AsyncContext())
    async with serve(traced_app([web.get('/data', backend_handler)])) as backend:
        backend_url = str(backend.make_url('')).rstrip('/')
        async with serve(await _frontend(backend_url)) as frontend, aiohttp.ClientSession() as session:
            async with session.get(frontend.make_url('/front')) as resp:
                assert resp.status == 200
                payload = await resp.json()
    segs = await wait_segments(udp_sink, 2)
    assert len(segs) == 2
    front = next(s for s in segs if s['http']['request']['url'].endswith('/front'))
    back = next(s for s in segs if s is not front)
    call, = front['subsegments']
    assert call['name'] == 'backend' and call['namespace'] == 'remote'
    assert call['http']['request']['url'] == backend_url + '/data'
    assert call['http']['response']['status'] == 200
    assert back['trace_id'] == front['trace_id']
    assert back['parent_id'] == call['id']
    assert 'parent_id' not in front
    assert back['http']['request']['url'] == backend_url + '/data'
    assert payload['trace_header'] == 'Root=%s;Parent=%s;Sampled=1' % (front['trace_id'], call['id'])
    # The backend answered inside the frontend's call.
    assert call['start_time'] <= back['start_time'] <= back['end_time'] <= call['end_time']


async def test_three_hops_from_a_traced_caller(xray, udp_sink):
    xray.configure(context=AsyncContext())
    async with serve(traced_app([web.get('/data', backend_handler)])) as backend:
        backend_url = str(backend.make_url('')).rstrip('/')
        async with serve(await _frontend(backend_url)) as frontend, \
                aiohttp.ClientSession(trace_configs=[aws_xray_trace_config(name='frontend')]) as session:
            async with xray.in_segment_async('caller') as caller:
                async with session.get(frontend.make_url('/front')) as resp:
                    assert resp.status == 200
                    assert resp.headers['X-Amzn-Trace-Id'] == 'Root=%s' % caller.trace_id
    segs = {s['name'] if s['name'] == 'caller' else s['http']['request']['url'].rsplit('/', 1)[1]: s
            for s in await wait_segments(udp_sink, 3)}
    assert set(segs) == {'caller', 'front', 'data'}
    assert {s['trace_id'] for s in segs.values()} == {caller.trace_id}
    assert segs['front']['parent_id'] == segs['caller']['subsegments'][0]['id']
    assert segs['data']['parent_id'] == segs['front']['subsegments'][0]['id']
