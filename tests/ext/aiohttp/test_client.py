"""The aiohttp client TraceConfig, with real ClientSessions against real servers on 127.0.0.1."""
import asyncio
import logging
import socket
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from aws_like_sdk import global_sdk_config
from aws_like_sdk.core.async_context import AsyncContext
from aws_like_sdk.core.suppression import suppress_tracing
from aws_like_sdk.ext.aiohttp import client as xray_client
from aws_like_sdk.ext.aiohttp.client import (LOCAL_EXCEPTIONS, LOCAL_NAMESPACE, REMOTE_NAMESPACE,
                                             aws_xray_trace_config)
from tests.ext.aiohttp.helpers import quiet, serve, traced_app, wait_segments
from tests.support.udp_sink import walk

pytestmark = pytest.mark.timeout(30)

XRAY = 'X-Amzn-Trace-Id'


async def echo(request):
    """Answers with the trace header it received (empty when none)."""
    return web.Response(text=request.headers.get(XRAY, ''))


async def status(request):
    return web.Response(status=int(request.match_info['code']), text='s')


async def redirect(request):
    raise web.HTTPFound('/echo')


def plain_app():
    app = web.Application()
    app.router.add_get('/echo', echo)
    app.router.add_get('/status/{code}', status)
    app.router.add_get('/redirect', redirect)
    return app


def _subsegments(seg):
    return [entity for entity, parent in walk(seg) if parent is not None]


def test_public_names():
    assert REMOTE_NAMESPACE == 'remote'
    assert LOCAL_NAMESPACE == 'local'
    assert aiohttp.ClientConnectionError in LOCAL_EXCEPTIONS and OSError in LOCAL_EXCEPTIONS
    config = aws_xray_trace_config()
    assert isinstance(config, aiohttp.TraceConfig)
    assert list(config.on_request_start) == [xray_client.begin_subsegment]
    assert list(config.on_request_end) == [xray_client.end_subsegment]
    assert list(config.on_request_exception) == [xray_client.end_subsegment_with_exception]


async def test_request_subsegment_and_injected_header(xray, udp_sink):
    async with serve(plain_app()) as server:
        port = server.port
        async with aiohttp.ClientSession(trace_configs=[aws_xray_trace_config()]) as session:
            async with xray.in_segment_async('caller') as segment:
                async with session.get(server.make_url('/echo?token=secret')) as resp:
                    received = await resp.text()
    seg, = await wait_segments(udp_sink, 1)
    assert seg['id'] == segment.id
    sub, = seg['subsegments']
    assert sub['name'] == '127.0.0.1'
    assert sub['namespace'] == REMOTE_NAMESPACE
    assert sub['http']['request'] == {'method': 'GET', 'url': 'http://127.0.0.1:%d/echo' % port}
    assert sub['http']['response'] == {'status': 200, 'content_length': len(received)}
    assert received == 'Root=%s;Parent=%s;Sampled=1' % (seg['trace_id'], sub['id'])
    assert not any(sub.get(flag) for flag in ('error', 'fault', 'throttle'))


async def test_named_trace_config_and_status_flags(xray, udp_sink):
    config = aws_xray_trace_config(name='downstream')
    async with serve(plain_app()) as server, aiohttp.ClientSession(trace_configs=[config]) as session:
        async with xray.in_segment_async('caller'):
            for code in (200, 404, 429, 500):
                async with session.get(server.make_url('/status/%d' % code)) as resp:
                    assert resp.status == code
    seg, = await wait_segments(udp_sink, 1)
    subs = seg['subsegments']
    assert [s['name'] for s in subs] == ['downstream'] * 4
    assert [s['http']['response']['status'] for s in subs] == [200, 404, 429, 500]
    flags = [{f for f in ('error', 'fault', 'throttle') if s.get(f)} for s in subs]
    assert flags == [set(), {'error'}, {'error', 'throttle'}, {'fault'}]
    assert all('cause' not in s for s in subs)


async def test_raise_for_status_records_the_answered_status_and_its_flags(xray, udp_sink):
    # aiohttp raises ClientResponseError before on_request_end: the server still answered, so its
    # status and flags are recorded as for a returned response, with the error as a remote cause.
    config = aws_xray_trace_config()
    raised = []
    async with serve(plain_app()) as server, \
            aiohttp.ClientSession(trace_configs=[config], raise_for_status=True) as session:
        async with xray.in_segment_async('caller'):
            for code in (404, 429, 503):
                with pytest.raises(aiohttp.ClientResponseError) as info:
                    async with session.get(server.make_url('/status/%d' % code)):
                        pass
                raised.append(info.value.status)
    assert raised == [404, 429, 503]
    seg, = await wait_segments(udp_sink, 1)
    subs = seg['subsegments']
    assert [s['http']['response']['status'] for s in subs] == [404, 429, 503]
    flags = [{f for f in ('error', 'fault', 'throttle') if s.get(f)} for s in subs]
    assert flags == [{'error'}, {'error', 'throttle'}, {'fault'}]
    assert all(s['namespace'] == REMOTE_NAMESPACE for s in subs)
    for sub in subs:
        exception, = sub['cause']['exceptions']
        assert exception['type'] == 'ClientResponseError' and exception['remote'] is True


async def test_recorded_url_keeps_its_percent_escapes(xray, udp_sink):
    # As the server side records it (and as aws-xray-sdk does): the encoded form, not a decoded one.
    async with serve(plain_app()) as server, \
            aiohttp.ClientSession(trace_configs=[aws_xray_trace_config()]) as session:
        port = server.port
        async with xray.in_segment_async('caller'):
            async with session.get(server.make_url('/a%20b')) as resp:
                assert resp.status == 404
    seg, = await wait_segments(udp_sink, 1)
    assert seg['subsegments'][0]['http']['request']['url'] == 'http://127.0.0.1:%d/a%%20b' % port


async def test_each_request_ends_the_subsegment_it_began_not_the_current_one(xray, udp_sink):
    # Another TraceConfig makes its own subsegment current while the request is in flight and ends it
    # only after ours has run: ours must end (and record the status on) its own subsegment.
    intruder = aiohttp.TraceConfig()

    async def begin_intruder(session, ctx, params):
        ctx.entity = xray.begin_subsegment('intruder')

    async def end_intruder(session, ctx, params):
        xray.end_subsegment_by_handle(ctx.entity)

    intruder.on_request_headers_sent.append(begin_intruder)
    intruder.on_request_end.append(end_intruder)
    async with serve(plain_app()) as server, \
            aiohttp.ClientSession(trace_configs=[aws_xray_trace_config(), intruder]) as session:
        async with xray.in_segment_async('caller'):
            async with session.get(server.make_url('/status/404')) as resp:
                assert resp.status == 404
    seg, = await wait_segments(udp_sink, 1)
    request_sub, = seg['subsegments']
    assert request_sub['name'] == '127.0.0.1'
    assert request_sub['http']['response'] == {'status': 404, 'content_length': 1}
    assert request_sub.get('error') is True
    intruder_sub, = request_sub['subsegments']
    assert intruder_sub['name'] == 'intruder' and 'http' not in intruder_sub and not intruder_sub.get('error')


async def test_redirect_is_one_subsegment_with_the_final_status(xray, udp_sink):
    async with serve(plain_app()) as server, \
            aiohttp.ClientSession(trace_configs=[aws_xray_trace_config()]) as session:
        async with xray.in_segment_async('caller'):
            async with session.get(server.make_url('/redirect')) as resp:
                received = await resp.text()
    seg, = await wait_segments(udp_sink, 1)
    sub, = seg['subsegments']
    assert sub['http']['response']['status'] == 200
    assert sub['http']['request']['url'].endswith('/redirect')
    assert received.endswith('Parent=%s;Sampled=1' % sub['id'])


async def test_credentials_are_not_recorded(xray, udp_sink):
    async with serve(plain_app()) as server, \
            aiohttp.ClientSession(trace_configs=[aws_xray_trace_config()]) as session:
        port = server.port
        url = 'http://user:pw@127.0.0.1:%d/echo?key=v#frag' % port
        async with xray.in_segment_async('caller'):
            async with session.get(url) as resp:
                assert resp.status == 200
    seg, = await wait_segments(udp_sink, 1)
    assert seg['subsegments'][0]['http']['request']['url'] == 'http://127.0.0.1:%d/echo' % port


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


async def test_connection_refused_is_local_and_raised_unchanged(xray, udp_sink):
    port = _free_port()
    url = 'http://127.0.0.1:%d/x' % port
    async with aiohttp.ClientSession() as plain:
        with pytest.raises(aiohttp.ClientConnectorError) as untraced:
            await plain.get(url)
    async with aiohttp.ClientSession(trace_configs=[aws_xray_trace_config()]) as session:
        async with xray.in_segment_async('caller'):
            with pytest.raises(aiohttp.ClientConnectorError) as traced:
                await session.get(url)
    assert type(traced.value) is type(untraced.value)
    assert str(traced.value) == str(untraced.value)
    seg, = await wait_segments(udp_sink, 1)
    sub, = seg['subsegments']
    assert sub['namespace'] == LOCAL_NAMESPACE
    assert sub['fault'] is True
    assert sub['cause']['exceptions'][0]['type'] == 'ClientConnectorError'
    assert 'response' not in sub['http']
    # The segment itself did not fail; only the call did.
    assert 'fault' not in seg


class FailingResolver(AbstractResolver):
    """A resolver that answers like a resolver for a name that does not exist."""

    async def resolve(self, host, port=0, family=socket.AF_INET):
        raise OSError(socket.EAI_NONAME, 'Name or service not known')

    async def close(self):
        return None


async def test_dns_failure_is_local(xray, udp_sink):
    connector = aiohttp.TCPConnector(resolver=FailingResolver())
    async with aiohttp.ClientSession(connector=connector, trace_configs=[aws_xray_trace_config()]) as session:
        async with xray.in_segment_async('caller'):
            with pytest.raises(aiohttp.ClientConnectorError):
                await session.get('http://no-such-host.invalid/path?q=1')
    seg, = await wait_segments(udp_sink, 1)
    sub, = seg['subsegments']
    assert sub['name'] == 'no-such-host.invalid'
    assert sub['namespace'] == LOCAL_NAMESPACE
    assert sub['http']['request']['url'] == 'http://no-such-host.invalid/path'
    assert sub['fault'] is True


async def test_timeout_is_recorded_and_raised(xray, udp_sink):
    async def slow(request):
        await asyncio.sleep(5)
        return web.Response()

    app = web.Application()
    app.router.add_get('/slow', slow)
    async with serve(app) as server, aiohttp.ClientSession(trace_configs=[aws_xray_trace_config()]) as session:
        async with xray.in_segment_async('caller'):
            with pytest.raises(asyncio.TimeoutError):
                await session.get(server.make_url('/slow'), timeout=aiohttp.ClientTimeout(total=0.1))
    seg, = await wait_segments(udp_sink, 1)
    sub, = seg['subsegments']
    assert sub['fault'] is True
    assert sub['cause']['exceptions'][0]['type'] in ('ServerTimeoutError', 'TimeoutError', 'ConnectionTimeoutError',
                                                     'SocketTimeoutError')


async def test_cancelled_client_request_ends_its_subsegment(xray, udp_sink):
    started = asyncio.Event()

    async def slow(request):
        started.set()
        await asyncio.sleep(5)
        return web.Response()

    app = web.Application()
    app.router.add_get('/slow', slow)
    async with serve(app) as server, aiohttp.ClientSession(trace_configs=[aws_xray_trace_config()]) as session:
        async with xray.in_segment_async('caller'):
            task = asyncio.ensure_future(session.get(server.make_url('/slow')))
            await asyncio.wait_for(started.wait(), 5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    seg, = await wait_segments(udp_sink, 1)
    sub, = seg['subsegments']
    assert sub['cause']['exceptions'][0]['type'] == 'CancelledError'


async def test_hundred_concurrent_requests_under_one_segment(xray, udp_sink):
    """One session, 100 requests in flight at once: every client subsegment hangs under the caller's
    segment, and every server segment is parented to exactly one of them."""
    xray.configure(context=AsyncContext())
    app = traced_app([web.get('/echo', echo)])
    async with serve(app) as server, aiohttp.ClientSession(trace_configs=[aws_xray_trace_config()]) as session:
        async def call(index):
            async with session.get(server.make_url('/echo?i=%d' % index)) as resp:
                return await resp.text()

        async with xray.in_segment_async('caller') as caller:
            received = await asyncio.wait_for(asyncio.gather(*(call(i) for i in range(100))), 20)
    segs = await wait_segments(udp_sink, 101, timeout=10)
    client = next(s for s in segs if s['id'] == caller.id)
    servers = [s for s in segs if s['id'] != caller.id]
    subs = _subsegments(client)
    assert len(subs) == 100 and len(servers) == 100
    assert {id(parent) for entity, parent in walk(client) if parent is not None} == {id(client)}
    assert all(s['name'] == '127.0.0.1' and not s.get('subsegments') for s in subs)
    sub_ids = {s['id'] for s in subs}
    assert len(sub_ids) == 100
    assert sorted(s['parent_id'] for s in servers) == sorted(sub_ids)
    assert {s['trace_id'] for s in servers} == {client['trace_id']}
    assert sorted(received) == sorted('Root=%s;Parent=%s;Sampled=1' % (client['trace_id'], i) for i in sub_ids)


@pytest.mark.parametrize('strategy', ['LOG_ERROR', 'IGNORE_ERROR', 'RUNTIME_ERROR'])
async def test_request_outside_any_segment_proceeds_untraced(xray, udp_sink, caplog_sdk, strategy):
    xray.configure(context_missing=strategy)
    async with serve(plain_app()) as server, \
            aiohttp.ClientSession(trace_configs=[aws_xray_trace_config()]) as session:
        for _ in range(2):
            async with session.get(server.make_url('/echo')) as resp:
                assert resp.status == 200
                assert await resp.text() == ''
    assert await quiet(udp_sink) == []
    # What is logged is the strategy's business: an error per request for LOG_ERROR, nothing above
    # DEBUG for IGNORE_ERROR, and for RUNTIME_ERROR (which must not fail the request) one warning.
    errors = [r for r in caplog_sdk.records if r.levelno >= logging.ERROR]
    warnings = [r for r in caplog_sdk.records if r.levelno == logging.WARNING]
    if strategy == 'LOG_ERROR':
        assert len(errors) == 2
    elif strategy == 'IGNORE_ERROR':
        assert errors == [] and warnings == []
    else:
        assert errors == []
        assert len([r for r in warnings if 'proceeds untraced' in r.getMessage()]) == 1


async def test_unsampled_segment_propagates_not_sampled(xray, udp_sink):
    async with serve(plain_app()) as server, \
            aiohttp.ClientSession(trace_configs=[aws_xray_trace_config()]) as session:
        async with xray.in_segment_async('caller', sampling=0):
            async with session.get(server.make_url('/echo')) as resp:
                received = await resp.text()
    assert received.endswith(';Sampled=0')
    assert await quiet(udp_sink) == []


async def test_suppressed_and_disabled_requests_are_untouched(xray, udp_sink):
    async with serve(plain_app()) as server, \
            aiohttp.ClientSession(trace_configs=[aws_xray_trace_config()]) as session:
        async with xray.in_segment_async('caller'):
            with suppress_tracing():
                async with session.get(server.make_url('/echo')) as resp:
                    assert await resp.text() == ''
        global_sdk_config.set_sdk_enabled(False)
        async with xray.in_segment_async('caller'):
            async with session.get(server.make_url('/echo')) as resp:
                assert await resp.text() == ''
    seg, = await wait_segments(udp_sink, 1)
    assert 'subsegments' not in seg
    assert await quiet(udp_sink, 0.1) and len(udp_sink.documents()) == 1


async def test_callbacks_work_with_a_plain_trace_config(xray, udp_sink):
    """Users who assemble their own TraceConfig from the module-level callbacks keep working."""
    config = aiohttp.TraceConfig()
    config.on_request_start.append(xray_client.begin_subsegment)
    config.on_request_end.append(xray_client.end_subsegment)
    config.on_request_exception.append(xray_client.end_subsegment_with_exception)
    async with serve(plain_app()) as server, aiohttp.ClientSession(trace_configs=[config]) as session:
        async with xray.in_segment_async('caller'):
            async with session.get(server.make_url('/echo')) as resp:
                await resp.read()
    seg, = await wait_segments(udp_sink, 1)
    assert seg['subsegments'][0]['name'] == '127.0.0.1'


async def test_end_callbacks_are_idempotent_and_never_raise(xray, udp_sink, caplog_sdk):
    """aiohttp reports an exception to every trace when another TraceConfig's end callback fails."""
    failing = aiohttp.TraceConfig()

    async def explode(session, ctx, params):
        raise RuntimeError('other instrumentation failed')

    failing.on_request_end.append(explode)
    async with serve(plain_app()) as server, \
            aiohttp.ClientSession(trace_configs=[aws_xray_trace_config(), failing]) as session:
        async with xray.in_segment_async('caller'):
            with pytest.raises(RuntimeError, match='other instrumentation failed'):
                await session.get(server.make_url('/echo'))
    seg, = await wait_segments(udp_sink, 1)
    sub, = seg['subsegments']
    assert sub['http']['response']['status'] == 200
    assert not any(r.levelno >= logging.WARNING and r.name.startswith('aws_like_sdk.ext.aiohttp')
                   for r in caplog_sdk.records)


async def test_callbacks_survive_broken_params(xray, udp_sink):
    ctx = SimpleNamespace(name=None, recorder=xray, trace_request_ctx=None)
    async with xray.in_segment_async('caller'):
        await xray_client.begin_subsegment(None, ctx, SimpleNamespace(url=None, method=None, headers=None))
        sub = xray.begin_subsegment('x', 'remote')
        ctx.xray_subsegment = sub
        await xray_client.end_subsegment(None, ctx, SimpleNamespace(response=None))
        assert not sub.in_progress
        await xray_client.end_subsegment_with_exception(None, ctx, SimpleNamespace())
    seg, = await wait_segments(udp_sink, 1)
    assert seg['subsegments'][0]['name'] == 'x'


def _failing_start_config(mode):
    """Another TraceConfig whose on_request_start raises, or awaits until the caller's timeout cancels it."""
    config = aiohttp.TraceConfig()

    async def start(session, trace_config_ctx, params):
        if mode == 'raise':
            raise RuntimeError('the other trace config failed')
        await asyncio.sleep(5)

    config.on_request_start.append(start)
    return config


@pytest.mark.parametrize('mode', ['raise', 'cancel'])
async def test_a_later_trace_config_failing_at_start_does_not_hold_the_segment_back(xray, udp_sink, caplog, mode):
    # aiohttp before 3.14 reports neither the end nor an exception to the configs that had started.
    caplog.set_level(logging.WARNING, logger='aws_like_sdk.ext.aiohttp.client')
    async with serve(plain_app()) as server:
        configs = [aws_xray_trace_config(), _failing_start_config(mode)]
        async with aiohttp.ClientSession(trace_configs=configs) as session:
            async with xray.in_segment_async('caller') as segment:
                with pytest.raises((RuntimeError, asyncio.TimeoutError)):
                    await asyncio.wait_for(session.get(server.make_url('/echo')), 0.2)
                async with xray.in_subsegment_async('after') as after:
                    pass
    seg, = await wait_segments(udp_sink, 1)
    assert seg['id'] == segment.id
    by_name = {sub['name']: sub for sub in seg['subsegments']}
    # 'after' hangs under the segment, not under the abandoned request's subsegment.
    assert set(by_name) == {'127.0.0.1', 'after'} and after.parent_id == segment.id
    abandoned = by_name['127.0.0.1']
    assert abandoned['fault'] is True and not abandoned.get('in_progress')
    assert abandoned['end_time'] >= abandoned['start_time']
