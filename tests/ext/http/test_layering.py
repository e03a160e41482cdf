"""One outgoing call, one subsegment, whichever HTTP layers are patched."""
import json

import httpx
import pytest
import requests
import urllib3

from aws_like_sdk.ext import httplib as ext_httplib
from aws_like_sdk.ext import httpx as ext_httpx
from aws_like_sdk.ext import requests as ext_requests
from tests.ext.http._support import subsegments_of, trace_header_for


@pytest.fixture(autouse=True)
def all_patched():
    ext_httplib.patch()
    ext_requests.patch()
    ext_httpx.patch()
    yield
    ext_requests.unpatch()
    ext_httpx.unpatch()
    ext_httplib.unpatch()


def test_requests_over_patched_http_client(xray, udp_sink, http_server):
    with xray.in_segment('seg'):
        body = requests.get(http_server + '/echo', timeout=5).json()
        streamed = requests.get(http_server + '/echo', stream=True, timeout=5)
        streamed_body = json.loads(streamed.raw.read())
        streamed.close()
    _, subs = subsegments_of(udp_sink)
    assert len(subs) == 2
    assert all(s.get('subsegments') is None for s in subs)
    assert body['trace_headers'] == [trace_header_for(subs[0])]
    assert streamed_body['trace_headers'] == [trace_header_for(subs[1])]


def test_urllib3_alone_is_traced_by_http_client_patch(xray, udp_sink, http_server):
    with urllib3.PoolManager() as pool, xray.in_segment('seg'):
        response = pool.request('GET', http_server + '/status/404?x=1')
        body = json.loads(response.data)
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['http']['request'] == {'method': 'GET', 'url': http_server + '/status/404'}
    assert sub['http']['response']['status'] == 404
    assert body['trace_headers'] == [trace_header_for(sub)]


def test_httpx_with_http_client_patched(xray, udp_sink, http_server):
    with httpx.Client(timeout=5) as client, xray.in_segment('seg'):
        body = client.get(http_server + '/echo').json()
    _, (sub,) = subsegments_of(udp_sink)
    assert body['trace_headers'] == [trace_header_for(sub)]
