"""The shared request-to-segment helper (ext/_http.py): its shortcuts record what the entity API would."""
import pytest

from aws_like_sdk.core.models.trace_header import TraceHeader
from aws_like_sdk.ext._http import IncomingRequest, begin_request, begin_request_for, parse_trace_header
from aws_like_sdk.ext.util import prepare_response_header

TRACE_ID = '1-5759e988-bd862e3fe1be46a994272793'


@pytest.mark.parametrize('value', [
    None, '',
    'Root=%s' % TRACE_ID,
    'Root=%s;Parent=53995c3f42cd8ad8' % TRACE_ID,
    'Root=%s;Parent=53995c3f42cd8ad8;Sampled=1' % TRACE_ID,
    'Root=%s;Parent=53995c3f42cd8ad8;Sampled=0' % TRACE_ID,
    'Root=%s;Sampled=?' % TRACE_ID,
    'Root=%s;Parent=53995C3F42CD8AD8;Sampled=1' % TRACE_ID.upper(),
    'Root=%s;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1' % TRACE_ID,
    'Sampled=1;Root=%s' % TRACE_ID,
    ' Root=%s ; Parent=53995c3f42cd8ad8 ' % TRACE_ID,
    'Root=%s;Parent=53995c3f42cd8ad8;Sampled=2' % TRACE_ID,
    'Root=1-xyz;Parent=53995c3f42cd8ad8',
    ';;=garbage;Root',
    b'Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1',
])
def test_trace_header_parse_matches_the_tolerant_parser(value):
    fast, full = parse_trace_header(value), TraceHeader.from_header_str(value)
    assert (fast.root, fast.parent, fast.sampled, fast.data) == (full.root, full.parent, full.sampled, full.data)


@pytest.mark.parametrize('sampled,expected', [(None, 'Root=%s' % TRACE_ID), ('?', 'Root=%s;Sampled=1' % TRACE_ID)])
def test_response_header_matches_the_header_serialiser(recorder, sampled, expected):
    segment = recorder.begin_segment('svc', traceid=TRACE_ID)
    origin = TraceHeader(root=TRACE_ID, sampled=sampled)
    assert prepare_response_header(origin, segment) == expected
    assert expected == TraceHeader(root=TRACE_ID, sampled=1 if sampled else None).to_header_str()
    recorder.end_segment()


def _request(**fields):
    base = dict(method='GET', url='http://h/p?q=1#frag', host='h', path='/p', user_agent='ua',
                client_ip='10.0.0.1', route='/p/<id>')
    base.update(fields)
    return IncomingRequest(**base)


@pytest.mark.parametrize('status,flags', [
    (200, set()), (404, {'error'}), (429, {'error', 'throttle'}), (503, {'fault'}),
])
def test_outcome_fields_and_flags(recorder, udp_sink, status, flags):
    handle = begin_request(recorder, _request())
    handle.finish(status=status, content_length='12')
    (doc,) = udp_sink.wait_for(1)
    assert doc['http'] == {'request': {'url': 'http://h/p', 'method': 'GET', 'user_agent': 'ua',
                                       'client_ip': '10.0.0.1'},
                           'response': {'status': status, 'content_length': 12}}
    assert doc['annotations'] == {'http_route': '/p/<id>'}
    assert {flag for flag in ('error', 'throttle', 'fault') if doc.get(flag)} == flags


def test_odd_status_and_length_go_through_the_validating_api(recorder, udp_sink):
    handle = begin_request(recorder, _request(route=None))
    handle.finish(status='201', content_length='not a number')
    (doc,) = udp_sink.wait_for(1)
    assert doc['http']['response'] == {'status': 201}
    assert 'annotations' not in doc


def test_url_annotations_are_written_for_request_and_response(recorder, udp_sink):
    handle = begin_request(recorder, _request(x_forwarded_for='203.0.113.9, 10.0.0.2'), urls_as_annotation=True)
    handle.finish(status=200, content_length=3)
    (doc,) = udp_sink.wait_for(1)
    assert doc['annotations'] == {'url': 'http://h/p', 'method': 'GET', 'user_agent': 'ua',
                                  'client_ip': '203.0.113.9', 'x_forwarded_for': True,
                                  'http_route': '/p/<id>', 'status': 200, 'content_length': 3}


def test_unsampled_request_records_nothing_and_ends(recorder, udp_sink):
    handle = begin_request(recorder, _request(trace_header='Root=%s;Sampled=0' % TRACE_ID))
    assert handle.entity is not None and not handle.entity.sampled
    handle.finish(status=500, exception=RuntimeError('x'))
    assert handle.entity.in_progress is False
    assert udp_sink.settle(quiet=0.1) == []


def test_response_fields_recorded_by_the_application_are_kept(recorder, udp_sink):
    handle = begin_request(recorder, _request())
    handle.entity.put_http_meta('content_length', 99)  # the application's own value, replaced below
    handle.entity.http['response']['x_custom'] = 'kept'
    handle.finish(status=201, content_length=5)
    (doc,) = udp_sink.wait_for(1)
    assert doc['http']['response'] == {'content_length': 5, 'x_custom': 'kept', 'status': 201}


@pytest.mark.parametrize('incoming,expected', [
    (None, 'Root={trace_id}'),
    ('Root=%s;Parent=53995c3f42cd8ad8;Sampled=1' % TRACE_ID, 'Root=%s' % TRACE_ID),
    ('Root=%s;Sampled=?' % TRACE_ID, 'Root=%s;Sampled=1' % TRACE_ID),
])
def test_handle_carries_the_response_header(recorder, udp_sink, incoming, expected):
    handle = begin_request(recorder, _request(trace_header=incoming))
    segment = handle.entity
    assert handle.header == handle.response_header() == expected.format(trace_id=segment.trace_id)
    assert handle.header == prepare_response_header(segment.get_origin_trace_header(), segment)
    handle.finish(status=200)
    udp_sink.wait_for(1)


def test_request_without_trace_header_gives_each_segment_its_own_empty_origin_header(recorder, udp_sink):
    first = begin_request(recorder, _request())
    first.finish(status=200)
    second = begin_request(recorder, _request())
    second.finish(status=200)
    udp_sink.wait_for(2)
    one, two = first.entity.get_origin_trace_header(), second.entity.get_origin_trace_header()
    assert isinstance(one, TraceHeader) and one is not two
    assert (one.root, one.parent, one.sampled, one.data) == (None, None, None, {})
    one.data['Lineage'] = 'a87bd80c:1'  # changing one request's header leaves every other untouched
    assert two.data == {} and first.entity.get_origin_trace_header() is one
    third = begin_request(recorder, _request())
    assert third.entity.get_origin_trace_header().data == {}
    third.finish(status=200)
    udp_sink.wait_for(3)


def test_a_response_header_that_cannot_be_built_still_ends_the_segment(recorder, udp_sink, monkeypatch):
    from aws_like_sdk.ext import _http

    def broken(origin, segment):
        raise ValueError('no header today')

    monkeypatch.setattr(_http, 'prepare_response_header', broken)
    handle = begin_request(recorder, _request())
    assert handle.entity is not None and handle.header is None and handle.response_header() is None
    handle.finish(status=200)
    (doc,) = udp_sink.wait_for(1)
    assert doc['http']['response'] == {'status': 200} and recorder.context.get_trace_entity() is None


@pytest.mark.parametrize('fields', [
    {},
    {'trace_header': 'Root=%s;Parent=53995c3f42cd8ad8;Sampled=1' % TRACE_ID, 'x_forwarded_for': '203.0.113.9, 10.0.0.2'},
    {'trace_header': 'Root=%s;Sampled=?' % TRACE_ID, 'route': None, 'user_agent': None},
    {'name': 'fixed-name', 'url': 'http://h/%7Euser'},
])
def test_fields_as_arguments_record_what_the_request_object_does(recorder, udp_sink, fields):
    request = _request(**fields)
    by_object = begin_request(recorder, request)
    by_object.finish(status=201, content_length=3)
    by_fields = begin_request_for(recorder, request.method, request.url, request.host, request.path,
                                  request.trace_header, request.user_agent, request.client_ip,
                                  request.x_forwarded_for, request.route, request.name)
    by_fields.finish(status=201, content_length=3)
    first, second = udp_sink.wait_for(2)
    assert by_object.header.split(';')[1:] == by_fields.header.split(';')[1:]
    for doc in (first, second):
        for key in ('id', 'start_time', 'end_time'):
            doc.pop(key)
        if not request.trace_header:
            doc.pop('trace_id')
    assert first == second
