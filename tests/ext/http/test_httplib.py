"""http.client / urllib.request patch against a real loopback server."""
import gc
import importlib
import http.client
import json
import logging
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest

from aws_like_sdk.core.suppression import suppress_tracing
from aws_like_sdk.ext import _outgoing
from aws_like_sdk.ext import httplib as ext_httplib
from aws_like_sdk.ext._patching import is_wrapped
from tests.ext.http._support import subsegments_of, trace_header_for

patch_module = importlib.import_module('aws_like_sdk.ext.httplib.patch')


@pytest.fixture(autouse=True)
def patched():
    ext_httplib.patch()
    yield
    ext_httplib.unpatch()
    ext_httplib.reset_ignored()


def _connection(base):
    parts = urlsplit(base)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)


def test_urlopen_one_subsegment_header_and_status(xray, udp_sink, http_server):
    with xray.in_segment('seg'):
        with urllib.request.urlopen(http_server + '/echo?q=secret', timeout=5) as response:
            body = json.loads(response.read())
    segment, subs = subsegments_of(udp_sink)
    assert len(subs) == 1
    sub = subs[0]
    assert sub['name'] == '127.0.0.1' and sub['namespace'] == 'remote'
    assert sub['parent_id'] == segment['id']
    assert sub['http']['request'] == {'method': 'GET', 'url': http_server + '/echo'}
    assert sub['http']['response']['status'] == 200
    assert sub['http']['response']['content_length'] > 0
    assert body['trace_headers'] == [trace_header_for(sub)]


def test_subsegment_spans_until_body_is_read(xray, udp_sink, http_server):
    conn = _connection(http_server)
    with xray.in_segment('seg') as segment:
        conn.request('GET', '/echo')
        response = conn.getresponse()
        # Work done between getresponse() and read() is not nested under the HTTP subsegment.
        with xray.in_subsegment('app-work'):
            pass
        assert xray.get_trace_entity() is segment
        assert udp_sink.documents() == []
        response.read()
    conn.close()
    _, subs = subsegments_of(udp_sink)
    names = sorted(s['name'] for s in subs)
    assert names == ['127.0.0.1', 'app-work']
    http_sub = next(s for s in subs if s['name'] == '127.0.0.1')
    app_sub = next(s for s in subs if s['name'] == 'app-work')
    assert http_sub['end_time'] >= app_sub['end_time']


def test_keep_alive_connection_gives_one_subsegment_per_exchange(xray, udp_sink, http_server):
    conn = _connection(http_server)
    with xray.in_segment('seg'):
        for path in ('/echo', '/status/404', '/status/500'):
            conn.request('POST', path, body=b'payload', headers={'Content-Type': 'text/plain'})
            conn.getresponse().read()
    conn.close()
    _, subs = subsegments_of(udp_sink)
    assert [s['http']['response']['status'] for s in subs] == [200, 404, 500]
    assert [bool(s.get('error')) for s in subs] == [False, True, False]
    assert [bool(s.get('fault')) for s in subs] == [False, False, True]
    assert all(s['http']['request']['method'] == 'POST' for s in subs)


@pytest.mark.parametrize('status,flags', [(404, {'error'}), (429, {'error', 'throttle'}), (502, {'fault'})])
def test_urlopen_http_errors_keep_their_exception(xray, udp_sink, http_server, status, flags):
    with xray.in_segment('seg'):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen('%s/status/%d' % (http_server, status), timeout=5)
        assert info.value.code == status
        info.value.close()
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['http']['response']['status'] == status
    assert {f for f in ('error', 'throttle', 'fault') if sub.get(f)} == flags


def test_head_response_ends_without_reading(xray, udp_sink, http_server):
    conn = _connection(http_server)
    with xray.in_segment('seg'):
        conn.request('HEAD', '/echo')
        response = conn.getresponse()
        assert response.status == 200
    conn.close()
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['http']['request']['method'] == 'HEAD'


def test_abandoned_response_still_lets_the_segment_go(xray, udp_sink, http_server):
    conn = _connection(http_server)
    with xray.in_segment('seg'):
        conn.request('GET', '/echo')
        response = conn.getresponse()
    assert udp_sink.settle(quiet=0.05) == []  # the segment waits for the open exchange
    del response
    conn.close()
    gc.collect()
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['http']['response']['status'] == 200


def test_connection_refused(xray, udp_sink, refused_url):
    with xray.in_segment('seg'):
        with pytest.raises(urllib.error.URLError) as info:
            urllib.request.urlopen(refused_url, timeout=5)
    assert isinstance(info.value.reason, ConnectionRefusedError)
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['fault'] is True
    assert sub['cause']['exceptions'][0]['type'] == 'ConnectionRefusedError'


def test_caller_trace_header_is_not_duplicated(xray, udp_sink, http_server):
    request = urllib.request.Request(http_server + '/echo', headers={'X-Amzn-Trace-Id': 'Root=caller'})
    with xray.in_segment('seg'):
        with urllib.request.urlopen(request, timeout=5) as response:
            body = json.loads(response.read())
    _, (sub,) = subsegments_of(udp_sink)
    assert body['trace_headers'] == [trace_header_for(sub)]


def test_add_ignored_rules_and_reset(xray, udp_sink, http_server):
    ext_httplib.add_ignored(hostname='127.0.0.*')
    ext_httplib.add_ignored(urls=['/status/204'])
    ext_httplib.add_ignored(subclass='tests.ext.http.test_httplib._Custom')
    with xray.in_segment('seg'):
        body = json.loads(urllib.request.urlopen(http_server + '/echo', timeout=5).read())
    assert body['trace_headers'] == []
    _, subs = subsegments_of(udp_sink)
    assert subs == []

    ext_httplib.reset_ignored()
    ext_httplib.add_ignored(urls=['/status/204'])
    ext_httplib.add_ignored(subclass=_Custom)
    udp_sink.clear()
    parts = urlsplit(http_server)
    with xray.in_segment('seg'):
        urllib.request.urlopen(http_server + '/status/204?x=1', timeout=5).read()
        custom = _Custom(parts.hostname, parts.port, timeout=5)
        custom.request('GET', '/echo')
        custom.getresponse().read()
        custom.close()
        urllib.request.urlopen(http_server + '/status/201', timeout=5).read()
    _, subs = subsegments_of(udp_sink)
    assert [s['http']['response']['status'] for s in subs] == [201]


class _Custom(http.client.HTTPConnection):
    pass


def test_default_rule_ignores_botocore_sampling_calls():
    rule = patch_module._DEFAULT_IGNORED[0]
    assert rule.subclass == 'botocore.awsrequest.AWSHTTPConnection'
    assert '/GetSamplingRules' in rule.urls and '/SamplingTargets' in rule.urls


def test_add_ignored_without_criteria_is_refused(caplog):
    before = list(patch_module._ignored)
    ext_httplib.add_ignored()
    assert patch_module._ignored == before
    assert 'nothing to ignore' in caplog.text


def test_full_url_forms():
    conn = http.client.HTTPSConnection('example.com', 8443)
    assert patch_module._full_url(conn, '/a?b=c') == 'https://example.com:8443/a?b=c'
    assert patch_module._full_url(http.client.HTTPSConnection('example.com'), b'/x') == 'https://example.com/x'
    assert patch_module._full_url(http.client.HTTPConnection('::1', 8080), '/') == 'http://[::1]:8080/'
    assert patch_module._full_url(conn, 'http://proxy.target/p') == 'http://proxy.target/p'
    tunnel = http.client.HTTPSConnection('proxy', 3128)
    tunnel.set_tunnel('real.host', 443)
    assert patch_module._full_url(tunnel, '/r') == 'https://real.host/r'


def test_suppressed_and_outside_segment(xray, udp_sink, http_server, caplog):
    with xray.in_segment('seg'):
        with suppress_tracing():
            body = json.loads(urllib.request.urlopen(http_server + '/echo', timeout=5).read())
    assert body['trace_headers'] == []
    _, subs = subsegments_of(udp_sink)
    assert subs == []
    udp_sink.clear()
    caplog.set_level(logging.ERROR)
    body = json.loads(urllib.request.urlopen(http_server + '/echo', timeout=5).read())
    assert body['trace_headers'] == []
    assert udp_sink.settle(quiet=0.1) == []


def test_unpatch_restores(xray, udp_sink, http_server):
    ext_httplib.patch()
    assert getattr(http.client, ext_httplib.PATCH_FLAG) is True
    ext_httplib.unpatch()
    ext_httplib.unpatch()
    assert not hasattr(http.client, ext_httplib.PATCH_FLAG)
    for name in ('putrequest', 'putheader', 'endheaders', 'send', 'getresponse', 'close'):
        assert not is_wrapped(http.client.HTTPConnection, name)
    assert not is_wrapped(http.client.HTTPResponse, '_close_conn')
    with xray.in_segment('seg'):
        body = json.loads(urllib.request.urlopen(http_server + '/echo', timeout=5).read())
    assert body['trace_headers'] == []
    _, subs = subsegments_of(udp_sink)
    assert subs == []


def _boom(*args, **kwargs):
    raise RuntimeError('instrumentation bug')


@pytest.mark.parametrize('module,target', [
    (_outgoing, 'begin_detached_subsegment'), (_outgoing, 'record_request'), (_outgoing, 'record_response'),
    (patch_module, '_full_url'), (patch_module._Exchange, 'end'),
])
def test_failing_instrumentation_keeps_result(xray, http_server, monkeypatch, module, target):
    monkeypatch.setattr(module, target, _boom)
    with xray.in_segment('seg'):
        with urllib.request.urlopen(http_server + '/status/203', timeout=5) as response:
            assert response.status == 203
            assert json.loads(response.read())['method'] == 'GET'


@pytest.mark.parametrize('target', ['begin_detached_subsegment', 'record_failure'])
def test_failing_instrumentation_keeps_the_exception(xray, refused_url, monkeypatch, target):
    monkeypatch.setattr(_outgoing, target, _boom)
    with xray.in_segment('seg'):
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(refused_url, timeout=5)
