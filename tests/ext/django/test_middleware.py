"""XRayMiddleware through Django's test client (WSGI-style) and a real ASGI request path."""
import logging

import pytest

from aws_like_sdk.core.models.trace_header import TraceHeader
from aws_like_sdk.core.streaming.default_streaming import DefaultStreaming
from tests.ext.django.helpers import only_segment, subsegments

TRACE_ID = '1-5759e988-bd862e3fe1be46a994272793'
PARENT_ID = '53995c3f42cd8ad8'


def test_request_becomes_segment_with_http_block(client, udp_sink):
    response = client.get('/?q=secret', HTTP_USER_AGENT='pytest-agent', REMOTE_ADDR='10.0.0.7')
    assert response.status_code == 200
    assert response.content == b'hello'

    segment = only_segment(udp_sink)
    assert segment['name'] == 'django-test'
    request = segment['http']['request']
    assert request == {'url': 'http://testserver/', 'method': 'GET', 'user_agent': 'pytest-agent',
                       'client_ip': '10.0.0.7'}
    assert segment['http']['response'] == {'status': 200, 'content_length': 5}
    assert not segment.get('error') and not segment.get('fault') and not segment.get('in_progress')
    header = TraceHeader.from_header_str(response['X-Amzn-Trace-Id'])
    assert header.root == segment['trace_id']


def test_forwarded_for_wins_over_remote_addr(client, udp_sink):
    client.get('/', HTTP_X_FORWARDED_FOR='203.0.113.9, 10.0.0.1', REMOTE_ADDR='10.0.0.7')
    request = only_segment(udp_sink)['http']['request']
    assert request['client_ip'] == '203.0.113.9'
    assert request['x_forwarded_for'] is True


def test_incoming_trace_header_is_continued(client, udp_sink):
    header = 'Root=%s;Parent=%s;Sampled=1' % (TRACE_ID, PARENT_ID)
    response = client.get('/', HTTP_X_AMZN_TRACE_ID=header)
    segment = only_segment(udp_sink)
    assert segment['trace_id'] == TRACE_ID
    assert segment['parent_id'] == PARENT_ID
    assert response['X-Amzn-Trace-Id'] == 'Root=%s' % TRACE_ID


def test_sampled_question_mark_gets_the_decision_back(client, udp_sink):
    response = client.get('/', HTTP_X_AMZN_TRACE_ID='Root=%s;Sampled=?' % TRACE_ID)
    only_segment(udp_sink)
    assert response['X-Amzn-Trace-Id'] == 'Root=%s;Sampled=1' % TRACE_ID


def test_incoming_unsampled_request_emits_nothing(client, udp_sink):
    response = client.get('/', HTTP_X_AMZN_TRACE_ID='Root=%s;Sampled=0' % TRACE_ID)
    assert response.status_code == 200
    assert response.content == b'hello'
    assert udp_sink.settle(quiet=0.1) == []


@pytest.mark.parametrize('header', ['garbage', 'Root=;Parent=;Sampled=', ';;;', 'Root=1-zz-!!;Sampled=maybe',
                                    '\x00\xff' * 50])
def test_malformed_trace_header_starts_a_new_trace(client, udp_sink, header):
    response = client.get('/', HTTP_X_AMZN_TRACE_ID=header)
    assert response.status_code == 200
    assert response.content == b'hello'
    segment = only_segment(udp_sink)
    assert segment['trace_id'].startswith('1-')
    assert 'parent_id' not in segment


def test_route_is_recorded_for_grouping(client, udp_sink):
    client.get('/items/42/')
    segment = only_segment(udp_sink)
    assert segment['http']['request']['url'] == 'http://testserver/items/42/'
    assert segment['annotations']['http_route'] == 'items/<int:pk>/'


def test_regex_route(client, udp_sink):
    client.get('/regex/abc/')
    assert only_segment(udp_sink)['annotations']['http_route'] == '^regex/(?P<slug>[a-z]+)/$'


def test_unrouted_404_has_no_route(client, udp_sink):
    response = client.get('/no/such/page/')
    assert response.status_code == 404
    segment = only_segment(udp_sink)
    assert segment['http']['response']['status'] == 404
    assert segment['error'] is True
    assert 'fault' not in segment and 'cause' not in segment
    assert 'http_route' not in segment.get('annotations', {})


def test_view_exception_is_a_fault_with_cause(client, udp_sink):
    from tests.ext.django.project.views import ViewError
    response = client.get('/boom/')
    assert response.status_code == 500
    segment = only_segment(udp_sink)
    assert segment['fault'] is True
    assert segment['http']['response']['status'] == 500
    exception = segment['cause']['exceptions'][0]
    assert exception['type'] == ViewError.__name__
    assert exception['message'] == 'boom'
    assert exception['stack']


def test_view_exception_still_reaches_django_unchanged(django_xray, udp_sink):
    from django.test import Client
    from tests.ext.django.project.views import ViewError
    with pytest.raises(ViewError, match='boom'):
        Client().get('/boom/')  # raise_request_exception=True: Django hands back the view's own error
    assert only_segment(udp_sink)['fault'] is True


def test_http404_raised_by_view_is_an_error_without_cause(client, udp_sink):
    response = client.get('/missing/')
    assert response.status_code == 404
    segment = only_segment(udp_sink)
    assert segment['error'] is True
    assert 'fault' not in segment and 'cause' not in segment
    assert segment['annotations']['http_route'] == 'missing/'


def test_429_is_throttle_and_error(client, udp_sink):
    response = client.get('/throttled/')
    assert response.status_code == 429
    segment = only_segment(udp_sink)
    assert segment['throttle'] is True and segment['error'] is True
    assert 'fault' not in segment


def test_view_annotation_lands_on_request_segment(client, udp_sink):
    client.get('/annotate/')
    assert only_segment(udp_sink)['annotations']['view'] == 'annotate'


def test_streaming_response_segment_ends_after_last_chunk(client, udp_sink):
    response = client.get('/stream/')
    assert udp_sink.settle(quiet=0.1) == []  # body not sent yet: segment still open
    assert b''.join(response.streaming_content) == b'alphabetagamma'
    response.close()
    segment = only_segment(udp_sink)
    assert segment['http']['response'] == {'status': 200, 'content_length': 14}
    names = [sub['name'] for sub in subsegments(segment)]
    assert names == ['execute']  # the query run while streaming belongs to the request
    assert 'X-Amzn-Trace-Id' in response


def test_streaming_response_failing_midway_records_the_error(client, udp_sink):
    from tests.ext.django.project.views import ViewError
    response = client.get('/stream-broken/')
    with pytest.raises(ViewError, match='stream broke'):
        b''.join(response.streaming_content)
    response.close()
    segment = only_segment(udp_sink)
    assert segment['fault'] is True
    assert segment['cause']['exceptions'][0]['type'] == 'ViewError'


def test_streaming_response_closed_unread_still_ends_segment(client, udp_sink):
    response = client.get('/stream/')
    response.close()
    segment = only_segment(udp_sink)
    assert segment['http']['response'] == {'status': 200, 'content_length': 0}


def test_disallowed_host_is_traced_and_answered_400(client, udp_sink):
    response = client.get('/', HTTP_HOST='evil.invalid')
    assert response.status_code == 400
    segment = only_segment(udp_sink)
    assert segment['http']['request']['url'] == 'http://evil.invalid/'
    assert segment['http']['response']['status'] == 400


def test_dynamic_naming_uses_host(client, udp_sink, xray):
    xray.dynamic_naming = '*.example.com'
    client.get('/', HTTP_HOST='shop.example.com')
    client.get('/', HTTP_HOST='localhost')
    names = sorted(doc['name'] for doc in udp_sink.wait_for(2))
    assert names == ['django-test', 'shop.example.com']


def test_urls_as_annotation_all(client, udp_sink, settings_override):
    with settings_override(URLS_AS_ANNOTATION='ALL'):
        response = client.get('/items/3/', HTTP_USER_AGENT='ua')
    annotations = only_segment(udp_sink)['annotations']
    assert annotations['url'] == 'http://testserver/items/3/'
    assert annotations['method'] == 'GET'
    assert annotations['user_agent'] == 'ua'
    assert annotations['status'] == 200
    assert annotations['content_length'] == len(response.content)


@pytest.mark.parametrize('mode', ['LAMBDA', 'NONE', 'bogus'])
def test_urls_as_annotation_off_outside_lambda(client, udp_sink, settings_override, mode):
    with settings_override(URLS_AS_ANNOTATION=mode):
        client.get('/')
    assert 'url' not in only_segment(udp_sink).get('annotations', {})


def test_lambda_mode_records_subsegment_under_facade(client, udp_sink, xray, monkeypatch, settings_override):
    from aws_like_sdk.core.lambda_launcher import LambdaContext
    monkeypatch.setenv('LAMBDA_TASK_ROOT', '/var/task')
    monkeypatch.setenv('_X_AMZN_TRACE_ID', 'Root=%s;Parent=%s;Sampled=1' % (TRACE_ID, PARENT_ID))
    xray.context = LambdaContext()
    # As in a recorder built inside Lambda: every finished subsegment is streamed out.
    xray.streaming = DefaultStreaming(0)
    with settings_override(URLS_AS_ANNOTATION='LAMBDA'):
        response = client.get('/items/1/')
    assert response.status_code == 200
    docs = udp_sink.wait_for(2)
    assert all(doc['type'] == 'subsegment' and doc['trace_id'] == TRACE_ID for doc in docs)
    sub = next(doc for doc in docs if doc['name'] == 'django-test')
    query = next(doc for doc in docs if doc['name'] == 'execute')
    assert sub['parent_id'] == PARENT_ID and query['parent_id'] == sub['id']
    assert sub['http']['request']['url'] == 'http://testserver/items/1/'
    assert sub['annotations']['url'] == 'http://testserver/items/1/'
    assert sub['annotations']['http_route'] == 'items/<int:pk>/'


def test_sdk_disabled_emits_nothing(client, udp_sink):
    from aws_like_sdk import global_sdk_config
    global_sdk_config.set_sdk_enabled(False)
    response = client.get('/items/1/')
    assert response.status_code == 200
    assert 'X-Amzn-Trace-Id' not in response
    assert udp_sink.settle(quiet=0.1) == []


def test_suppressed_tracing_emits_nothing(client, udp_sink):
    from aws_like_sdk.core.suppression import suppress_tracing
    with suppress_tracing():
        response = client.get('/items/1/')
    assert response.status_code == 200
    assert udp_sink.settle(quiet=0.1) == []


def test_missing_service_name_leaves_request_untraced(client, udp_sink, xray, caplog):
    xray.service = None
    with caplog.at_level(logging.WARNING):
        response = client.get('/')
    assert response.status_code == 200
    assert response.content == b'hello'
    assert udp_sink.settle(quiet=0.1) == []


def test_broken_emitter_does_not_affect_response(client, xray):
    class Broken:
        def send_entity(self, entity):
            raise RuntimeError('emitter down')

        def set_daemon_address(self, address):
            pass

    xray.emitter = Broken()
    response = client.get('/items/1/')
    assert response.status_code == 200
    assert response.content in (b'none', b'apple')


def test_each_request_is_its_own_segment(client, udp_sink):
    for _ in range(3):
        client.get('/')
    docs = udp_sink.wait_for(3)
    assert len({doc['id'] for doc in docs}) == 3
    assert len({doc['trace_id'] for doc in docs}) == 3


# -- real ASGI path ---------------------------------------------------------------------------------
async def test_asgi_async_view(asgi_client, udp_sink):
    async with asgi_client as http_client:
        response = await http_client.get('/async/?x=1', headers={'user-agent': 'httpx-test',
                                                                   'x-amzn-trace-id': 'Root=%s' % TRACE_ID})
    assert response.status_code == 200
    assert response.text == 'async hello'
    segment = only_segment(udp_sink)
    assert segment['trace_id'] == TRACE_ID
    assert segment['http']['request'] == {'url': 'http://testserver/async/', 'method': 'GET',
                                          'user_agent': 'httpx-test', 'client_ip': '10.1.2.3'}
    assert segment['http']['response'] == {'status': 200, 'content_length': 11}
    assert segment['annotations']['http_route'] == 'async/'
    assert response.headers['x-amzn-trace-id'] == 'Root=%s' % TRACE_ID


async def test_asgi_sync_view_with_query(asgi_client, udp_sink):
    async with asgi_client as http_client:
        response = await http_client.get('/items/7/')
    assert response.status_code == 200
    segment = only_segment(udp_sink)
    assert [sub['name'] for sub in subsegments(segment)] == ['execute']
    assert subsegments(segment)[0]['namespace'] == 'remote'


async def test_asgi_async_view_querying_through_sync_to_async(asgi_client, udp_sink):
    async with asgi_client as http_client:
        response = await http_client.get('/async/query/')
    assert response.status_code == 200
    segment = only_segment(udp_sink)
    subs = subsegments(segment)
    assert [sub['name'] for sub in subs] == ['execute']
    assert subs[0]['sql']['sanitized_query'].startswith('SELECT COUNT(*)')


async def test_asgi_async_view_exception(asgi_client, udp_sink):
    async with asgi_client as http_client:
        response = await http_client.get('/async/boom/')
    assert response.status_code == 500
    segment = only_segment(udp_sink)
    assert segment['fault'] is True
    assert segment['cause']['exceptions'][0]['message'] == 'async boom'


async def test_asgi_async_streaming(asgi_client, udp_sink):
    async with asgi_client as http_client:
        response = await http_client.get('/async/stream/')
    assert response.status_code == 200
    assert response.content == b'onetwo'
    segment = only_segment(udp_sink)
    assert segment['http']['response'] == {'status': 200, 'content_length': 6}


async def test_asgi_concurrent_requests_get_their_own_segments(asgi_client, udp_sink):
    import asyncio
    async with asgi_client as http_client:
        responses = await asyncio.gather(*(http_client.get('/items/%d/' % n) for n in range(5)))
    assert all(r.status_code == 200 for r in responses)
    docs = udp_sink.wait_for(5)
    assert len(docs) == 5
    urls = sorted(doc['http']['request']['url'] for doc in docs)
    assert urls == sorted('http://testserver/items/%d/' % n for n in range(5))
    for doc in docs:
        assert [sub['name'] for sub in doc.get('subsegments', [])] == ['execute']


async def test_asgi_middleware_runs_as_coroutine():
    from asgiref.sync import iscoroutinefunction

    from aws_like_sdk.ext.django.middleware import XRayMiddleware

    async def get_response(request):
        return None

    assert iscoroutinefunction(XRayMiddleware(get_response))
    assert not iscoroutinefunction(XRayMiddleware(lambda request: None))


def test_non_ascii_path_is_escaped_in_url(client, udp_sink):
    response = client.get('/caf\u00e9 menu/')
    assert response.status_code == 404
    assert only_segment(udp_sink)['http']['request']['url'] == 'http://testserver/caf%C3%A9%20menu/'


def test_forwarded_host_is_used_when_django_trusts_it(client, udp_sink):
    from django.test import override_settings
    with override_settings(USE_X_FORWARDED_HOST=True):
        client.get('/', HTTP_X_FORWARDED_HOST='public.example.com', HTTP_HOST='internal:8000')
    client.get('/', HTTP_X_FORWARDED_HOST='public.example.com', HTTP_HOST='internal:8000')
    urls = [doc['http']['request']['url'] for doc in udp_sink.wait_for(2)]
    assert urls == ['http://public.example.com/', 'http://internal:8000/']


def test_https_scheme(client, udp_sink):
    client.get('/', secure=True)
    assert only_segment(udp_sink)['http']['request']['url'] == 'https://testserver/'


@pytest.mark.parametrize('direct_store', [True, False])
def test_response_headers_are_read_and_written_alike_with_or_without_the_header_store(
        client, udp_sink, monkeypatch, direct_store):
    from aws_like_sdk.ext.django import middleware
    if not direct_store:
        # A response whose headers are not Django's dict-backed mapping takes the public API.
        monkeypatch.setattr(middleware, '_header_store', lambda response: None)
    response = client.get('/')
    segment = only_segment(udp_sink)
    assert segment['http']['response'] == {'status': 200, 'content_length': 5}
    assert response['X-Amzn-Trace-Id'] == 'Root=%s' % segment['trace_id']
    assert response.has_header('x-amzn-trace-id')
    assert [key for key in response.headers if key.lower() == 'x-amzn-trace-id'] == ['X-Amzn-Trace-Id']
