"""The issue's headline example: a real UDP socket receives valid segment documents."""
from aws_like_sdk.core.emitters.encoding import PROTOCOL_HEADER


def test_segment_with_captured_function_arrives(recorder, udp_sink):
    @recorder.capture('work')
    def work():
        return 42

    with recorder.in_segment('orders') as seg:
        seg.put_annotation('customer', 'c-42')
        assert work() == 42

    (doc,) = udp_sink.wait_for(1)
    assert doc['name'] == 'orders'
    assert doc['annotations'] == {'customer': 'c-42'}
    assert doc['in_progress'] is False and doc['end_time'] >= doc['start_time']
    (sub,) = doc['subsegments']
    assert sub['name'] == 'work' and sub['namespace'] == 'local' and sub['parent_id'] == doc['id']
    assert sub['trace_id'] == doc['trace_id']
    assert doc['aws']['xray'] == {'sdk': 'aws_like_sdk for Python', 'sdk_version': '1.0.0'}


def test_datagram_is_header_newline_compact_json(recorder, udp_sink):
    with recorder.in_segment('raw'):
        pass
    udp_sink.wait_for(1)
    (data,) = udp_sink.datagrams
    header, _, body = data.partition(b'\n')
    assert header.decode() == PROTOCOL_HEADER
    assert b'": ' not in body and b', "' not in body
