"""httpx patch (sync Client and AsyncClient) against a real loopback server."""
import asyncio
import importlib

import httpx
import pytest

from aws_like_sdk.core.suppression import suppress_tracing
from aws_like_sdk.ext import _outgoing
from aws_like_sdk.ext import httpx as ext_httpx
from aws_like_sdk.ext._patching import is_wrapped
from tests.ext.http._support import subsegments_of, trace_header_for

patch_module = importlib.import_module('aws_like_sdk.ext.httpx.patch')


@pytest.fixture(autouse=True)
def patched():
    ext_httpx.patch()
    yield
    ext_httpx.unpatch()


def test_sync_client(xray, udp_sink, http_server):
    url = http_server.replace('http://', 'http://bob:pw@') + '/echo?key=v'
    with httpx.Client(timeout=5) as client, xray.in_segment('seg'):
        body = client.get(url).json()
    segment, (sub,) = subsegments_of(udp_sink)
    assert sub['name'] == '127.0.0.1' and sub['namespace'] == 'remote'
    assert sub['parent_id'] == segment['id']
    assert sub['http']['request'] == {'method': 'GET', 'url': http_server.replace('http://', 'http://bob@') + '/echo'}
    assert sub['http']['response']['status'] == 200
    assert body['trace_headers'] == [trace_header_for(sub)]


def test_client_built_before_patch_is_traced(xray, udp_sink, http_server):
    ext_httpx.unpatch()
    client = httpx.Client(timeout=5)
    ext_httpx.patch()
    with client, xray.in_segment('seg'):
        client.post(http_server + '/status/429', content=b'x')
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['throttle'] is True and sub['error'] is True


async def test_async_client_concurrent_requests_get_their_own_parents(xray, udp_sink, http_server):
    async with httpx.AsyncClient(timeout=5) as client:
        async with xray.in_segment_async('seg'):
            async def call(path):
                async with xray.in_subsegment_async('task' + path[-3:]):
                    return (await client.get(http_server + path)).json()
            bodies = await asyncio.gather(call('/status/200'), call('/status/500'))
    _, subs = subsegments_of(udp_sink)
    by_id = {s['id']: s for s in subs}
    http_subs = [s for s in subs if s['namespace'] == 'remote']
    assert len(http_subs) == 2
    for sub in http_subs:
        task = by_id[sub['parent_id']]
        assert task['name'] == 'task' + str(sub['http']['response']['status'])
    assert sorted(b['trace_headers'][0] for b in bodies) == sorted(trace_header_for(s) for s in http_subs)
    fault = next(s for s in http_subs if s['http']['response']['status'] == 500)
    assert fault['fault'] is True


async def test_async_connection_refused(xray, udp_sink, refused_url):
    async with httpx.AsyncClient(timeout=5) as client:
        async with xray.in_segment_async('seg'):
            with pytest.raises(httpx.ConnectError):
                await client.get(refused_url)
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['fault'] is True
    assert sub['cause']['exceptions'][0]['type'] == 'ConnectError'


def test_redirect_hops_are_separate_requests(xray, udp_sink, http_server):
    with httpx.Client(timeout=5, follow_redirects=True) as client, xray.in_segment('seg'):
        body = client.get(http_server + '/redirect').json()
    _, subs = subsegments_of(udp_sink)
    assert [s['http']['response']['status'] for s in subs] == [302, 200]
    assert body['trace_headers'] == [trace_header_for(subs[1])]


def test_suppressed_outside_segment_and_unpatch(xray, udp_sink, http_server):
    with httpx.Client(timeout=5) as client:
        with xray.in_segment('seg'):
            with suppress_tracing():
                assert client.get(http_server + '/echo').json()['trace_headers'] == []
        assert client.get(http_server + '/echo').json()['trace_headers'] == []
        _, subs = subsegments_of(udp_sink)
        assert subs == []
        ext_httpx.unpatch()
        ext_httpx.unpatch()
        assert not is_wrapped(httpx.HTTPTransport, 'handle_request')
        assert not is_wrapped(httpx.AsyncHTTPTransport, 'handle_async_request')
        udp_sink.clear()
        with xray.in_segment('seg'):
            assert client.get(http_server + '/echo').json()['trace_headers'] == []
        _, subs = subsegments_of(udp_sink)
        assert subs == []


def _boom(*args, **kwargs):
    raise RuntimeError('instrumentation bug')


@pytest.mark.parametrize('module,target', [(patch_module, '_prepare'), (_outgoing, 'set_trace_header'),
                                           (_outgoing, 'record_response')])
async def test_failing_instrumentation_keeps_result_async(xray, http_server, refused_url, monkeypatch, module,
                                                          target):
    monkeypatch.setattr(module, target, _boom)
    async with httpx.AsyncClient(timeout=5) as client:
        async with xray.in_segment_async('seg'):
            response = await client.get(http_server + '/status/418')
            with pytest.raises(httpx.ConnectError):
                await client.get(refused_url)
    assert response.status_code == 418


@pytest.mark.parametrize('module,target', [(patch_module, '_prepare'), (_outgoing, 'record_request')])
def test_failing_instrumentation_keeps_result_sync(xray, http_server, refused_url, monkeypatch, module, target):
    monkeypatch.setattr(module, target, _boom)
    with httpx.Client(timeout=5) as client, xray.in_segment('seg'):
        assert client.get(http_server + '/status/418').status_code == 418
        with pytest.raises(httpx.ConnectError):
            client.get(refused_url)
