"""requests patch against a real loopback server."""
import logging

import pytest
import requests

from aws_like_sdk.core.suppression import suppress_tracing
from aws_like_sdk.ext import _outgoing
from aws_like_sdk.ext._patching import is_wrapped
from aws_like_sdk.ext.requests import patch as patch_requests
from aws_like_sdk.ext.requests import unpatch as unpatch_requests
from tests.ext.http._support import subsegments_of, trace_header_for


@pytest.fixture(autouse=True)
def patched():
    patch_requests()
    yield
    unpatch_requests()


def test_subsegment_per_call_with_header_propagated(xray, udp_sink, http_server):
    with xray.in_segment('seg'):
        body = requests.get(http_server + '/echo?secret=1', timeout=5).json()
    segment, subs = subsegments_of(udp_sink)
    assert len(subs) == 1
    sub = subs[0]
    assert sub['name'] == '127.0.0.1'
    assert sub['namespace'] == 'remote'
    assert sub['parent_id'] == segment['id']
    assert sub['http']['request'] == {'method': 'GET', 'url': http_server + '/echo'}
    assert sub['http']['response']['status'] == 200
    assert body['trace_headers'] == [trace_header_for(sub)]


def test_credentials_and_query_never_recorded(xray, udp_sink, http_server):
    url = http_server.replace('http://', 'http://alice:s3cret@') + '/echo?token=abc#frag'
    with xray.in_segment('seg'):
        requests.post(url, data=b'x', timeout=5)
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['http']['request']['url'] == http_server.replace('http://', 'http://alice@') + '/echo'
    assert sub['http']['request']['method'] == 'POST'
    assert 's3cret' not in repr(sub) and 'token' not in repr(sub)


@pytest.mark.parametrize('status,flags', [
    (404, {'error'}), (429, {'error', 'throttle'}), (500, {'fault'}), (503, {'fault'}), (201, set()),
])
def test_status_flags(xray, udp_sink, http_server, status, flags):
    with xray.in_segment('seg'):
        response = requests.get('%s/status/%d' % (http_server, status), timeout=5)
    assert response.status_code == status
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['http']['response']['status'] == status
    assert {flag for flag in ('error', 'throttle', 'fault') if sub.get(flag)} == flags
    assert 'cause' not in sub


def test_redirect_stays_one_subsegment_with_final_status(xray, udp_sink, http_server):
    with xray.in_segment('seg'):
        body = requests.get(http_server + '/redirect', timeout=5).json()
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['http']['response']['status'] == 200
    assert body['path'] == '/echo'
    assert body['trace_headers'] == [trace_header_for(sub)]


def test_connection_refused_recorded_and_reraised(xray, udp_sink, refused_url):
    with xray.in_segment('seg'):
        with pytest.raises(requests.ConnectionError):
            requests.get(refused_url, timeout=5)
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['fault'] is True
    assert 'status' not in sub['http'].get('response', {})
    (exc,) = sub['cause']['exceptions']
    assert exc['type'] == 'ConnectionError'


def test_session_send_of_prepared_request_is_traced(xray, udp_sink, http_server):
    with requests.Session() as session, xray.in_segment('seg'):
        prepared = session.prepare_request(requests.Request('PUT', http_server + '/echo', data=b'abc'))
        body = session.send(prepared, timeout=5).json()
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['http']['request']['method'] == 'PUT'
    assert body['trace_headers'] == [trace_header_for(sub)]


def test_caller_trace_header_replaced_not_duplicated(xray, udp_sink, http_server):
    with xray.in_segment('seg'):
        body = requests.get(http_server + '/echo', headers={'x-amzn-trace-id': 'Root=bogus'}, timeout=5).json()
    _, (sub,) = subsegments_of(udp_sink)
    assert body['trace_headers'] == [trace_header_for(sub)]


def test_unsampled_segment_propagates_sampled_0_and_emits_nothing(xray, udp_sink, http_server):
    with xray.in_segment('seg', sampling=0):
        body = requests.get(http_server + '/echo', timeout=5).json()
    assert body['trace_headers'] == ['Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0']
    assert udp_sink.settle(quiet=0.1) == []


def test_outside_segment_call_proceeds_untraced(xray, udp_sink, http_server, caplog):
    caplog.set_level(logging.ERROR)
    body = requests.get(http_server + '/echo', timeout=5).json()
    assert body['trace_headers'] == []
    assert any('cannot find the current segment' in r.getMessage() for r in caplog.records)
    assert udp_sink.settle(quiet=0.1) == []


def test_runtime_error_strategy_never_raises_into_the_call(xray, http_server, caplog):
    xray.configure(context_missing='RUNTIME_ERROR')
    caplog.set_level(logging.ERROR)
    assert requests.get(http_server + '/echo', timeout=5).status_code == 200
    assert any('proceeds untraced' in r.getMessage() for r in caplog.records)


def test_ignore_error_strategy_is_silent(xray, http_server, caplog):
    xray.configure(context_missing='IGNORE_ERROR')
    caplog.set_level(logging.DEBUG, logger='aws_like_sdk')
    assert requests.get(http_server + '/echo', timeout=5).status_code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_suppressed_calls_are_not_traced(xray, udp_sink, http_server):
    with xray.in_segment('seg'):
        with suppress_tracing():
            body = requests.get(http_server + '/echo', timeout=5).json()
    assert body['trace_headers'] == []
    segment, subs = subsegments_of(udp_sink)
    assert subs == []


def test_sdk_disabled_means_untraced(xray, udp_sink, http_server):
    from aws_like_sdk import global_sdk_config
    global_sdk_config.set_sdk_enabled(False)
    body = requests.get(http_server + '/echo', timeout=5).json()
    assert body['trace_headers'] == []
    assert udp_sink.settle(quiet=0.1) == []


def test_unpatch_restores_and_patch_is_idempotent(xray, udp_sink, http_server):
    patch_requests()
    patch_requests()
    assert is_wrapped(requests.Session, 'send')
    with xray.in_segment('seg'):
        requests.get(http_server + '/echo', timeout=5)
    _, subs = subsegments_of(udp_sink)
    assert len(subs) == 1
    unpatch_requests()
    unpatch_requests()
    assert not is_wrapped(requests.Session, 'send')
    udp_sink.clear()
    with xray.in_segment('seg'):
        body = requests.get(http_server + '/echo', timeout=5).json()
    assert body['trace_headers'] == []
    _, subs = subsegments_of(udp_sink)
    assert subs == []


def _boom(*args, **kwargs):
    raise RuntimeError('instrumentation bug')


@pytest.mark.parametrize('target', ['parent_entity', 'set_trace_header', 'record_request'])
def test_failing_instrumentation_keeps_result(xray, http_server, monkeypatch, target):
    monkeypatch.setattr(_outgoing, target, _boom)
    with xray.in_segment('seg'):
        response = requests.get(http_server + '/status/202', timeout=5)
    assert response.status_code == 202
    assert response.json()['method'] == 'GET'


@pytest.mark.parametrize('target', ['parent_entity', 'set_trace_header', 'record_failure'])
def test_failing_instrumentation_keeps_the_exception(xray, refused_url, monkeypatch, target):
    monkeypatch.setattr(_outgoing, target, _boom)
    with xray.in_segment('seg'):
        with pytest.raises(requests.ConnectionError):
            requests.get(refused_url, timeout=5)
