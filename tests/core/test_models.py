import json
import logging
import os
import re
import threading
import traceback

import pytest

from aws_like_sdk.core.exceptions.exceptions import (AlreadyEndedException, FacadeSegmentMutationException,
                                                     SegmentNameMissingException, SegmentNotFoundException)
from aws_like_sdk.core.models import http
from aws_like_sdk.core.models.default_dynamic_naming import DefaultDynamicNaming
from aws_like_sdk.core.models.dummy_entities import DummySegment, DummySubsegment
from aws_like_sdk.core.models.facade_segment import FacadeSegment
from aws_like_sdk.core.models.noop_traceid import NoOpTraceId
from aws_like_sdk.core.models.segment import Segment
from aws_like_sdk.core.models.subsegment import Subsegment
from aws_like_sdk.core.models.traceid import TraceId

TRACE_ID_RE = re.compile(r'^1-[0-9a-f]{8}-[0-9a-f]{24}$')
ID_RE = re.compile(r'^[0-9a-f]{16}$')


def test_ids_have_wire_formats():
    segment = Segment('svc')
    sub = Subsegment('child', 'local', segment)
    assert TRACE_ID_RE.match(segment.trace_id) and TRACE_ID_RE.match(TraceId().to_id())
    assert ID_RE.match(segment.id) and ID_RE.match(sub.id)
    assert abs(int(segment.trace_id[2:10], 16) - int(segment.start_time)) <= 1
    assert NoOpTraceId().to_id() == '1-00000000-000000000000000000000000'
    assert sub.trace_id == segment.trace_id


def test_segment_requires_name_and_subsegment_requires_segment():
    with pytest.raises(SegmentNameMissingException):
        Segment('')
    with pytest.raises(SegmentNotFoundException):
        Subsegment('x', 'local', None)


def test_name_sanitised_with_warning(caplog):
    caplog.set_level(logging.WARNING)
    assert Segment('a?b;c*d(e)f!g$h~i^j<k>l').name == 'abcdefghijkl'
    assert 'invalid characters' in caplog.text


def test_reference_counting_and_ready_to_send():
    segment = Segment('svc')
    a = Subsegment('a', 'local', segment)
    segment.add_subsegment(a)
    b = Subsegment('b', 'local', segment)
    a.add_subsegment(b)
    assert segment.ref_counter.get_current() == 2 and segment.get_total_subsegments_size() == 2
    assert b.parent_id == a.id and a.parent_id == segment.id
    b.close()
    a.close()
    assert not segment.ready_to_send()
    segment.close()
    assert segment.ready_to_send()
    segment.remove_subsegment(a)
    assert segment.get_total_subsegments_size() == 1


def test_annotations_validation(caplog):
    caplog.set_level(logging.WARNING)
    segment = Segment('svc')
    segment.put_annotation('good_key1', 'v')
    segment.put_annotation('num', 1.5)
    segment.put_annotation('flag', False)
    for key, value in [('bad-key', 1), ('has space', 1), ('', 1), (5, 1), ('ok', None), ('ok', [1]),
                       ('ok', {'a': 1}), ('nan', float('nan'))]:
        segment.put_annotation(key, value)
    assert segment.annotations == {'good_key1': 'v', 'num': 1.5, 'flag': False}
    assert caplog.text.count('Ignoring annotation') == 8


def test_metadata_namespaces(caplog):
    caplog.set_level(logging.WARNING)
    segment = Segment('svc')
    segment.put_metadata('a', 1)
    segment.put_metadata('b', {'x': {1, 2}}, 'custom')
    segment.put_metadata('c', 2, 'custom')
    segment.put_metadata('d', 3, 'AWS.reserved')
    segment.put_metadata('e', 3, namespace=7)
    doc = segment.to_dict()
    assert doc['metadata']['default'] == {'a': 1}
    assert doc['metadata']['custom']['c'] == 2
    assert sorted(doc['metadata']['custom']['b']['x']) == [1, 2]
    assert 'AWS.reserved' not in doc['metadata']
    assert 'reserved' in caplog.text


def test_unserialisable_metadata_never_raises():
    class Node:
        def __init__(self):
            self.me = self
            self.name = 'n'

    class Slotted:
        __slots__ = ('x',)

    cyclic = {'k': 1}
    cyclic['self'] = cyclic
    segment = Segment('svc')
    segment.put_metadata('cycle', cyclic)
    segment.put_metadata('node', Node())
    segment.put_metadata('bytes', b'\xff\x00abc')
    segment.put_metadata('obj', Slotted())
    segment.put_metadata('cls', Segment)
    segment.put_metadata('gen', (i for i in range(3)))
    segment.put_metadata('deep', _deep(500))
    segment.close()
    doc = json.loads(segment.serialize())
    meta = doc['metadata']['default']
    assert meta['cycle']['self'] == '<cycle>'
    assert meta['node'] == {'me': '<cycle>', 'name': 'n'}
    assert meta['bytes'].endswith('abc')
    assert meta['gen'] == [0, 1, 2]
    assert 'Segment' in meta['cls']


def _deep(n):
    value = {}
    for _ in range(n):
        value = {'d': value}
    return value


def test_http_meta_and_status_flags(caplog):
    segment = Segment('svc')
    segment.put_http_meta(http.URL, 'http://x/y')
    segment.put_http_meta(http.METHOD, 'GET')
    segment.put_http_meta(http.USER_AGENT, None)
    segment.put_http_meta('bogus', 1)
    segment.put_http_meta(http.STATUS, '429')
    segment.put_http_meta(http.CONTENT_LENGTH, 2)
    assert segment.http == {'request': {'url': 'http://x/y', 'method': 'GET'},
                            'response': {'status': 429, 'content_length': 2}}
    assert segment.throttle and segment.error and not segment.fault
    other = Segment('svc')
    other.apply_status_code(503)
    assert other.fault and not other.error
    other.apply_status_code(404)
    assert other.error
    doc = Segment('svc').to_dict()
    assert 'error' not in doc and 'fault' not in doc and 'throttle' not in doc


def _raise_and_record(entity, exc_type=ValueError):
    try:
        raise exc_type('boom')
    except Exception as exc:
        entity.add_exception(exc, traceback.extract_tb(exc.__traceback__))
        return exc


def test_exception_recorded_once_and_referenced_by_id_from_parents():
    segment = Segment('svc')
    sub = Subsegment('child', 'local', segment)
    segment.add_subsegment(sub)
    exc = _raise_and_record(sub)
    segment.add_exception(exc, [])
    assert segment.fault and sub.fault
    sub.close()
    segment.close()
    doc = segment.to_dict()
    (record,) = doc['subsegments'][0]['cause']['exceptions']
    assert record['type'] == 'ValueError' and record['message'] == 'boom' and record['remote'] is False
    assert ID_RE.match(record['id'])
    assert record['stack'][0]['label'] == '_raise_and_record'
    assert record['stack'][0]['path'] == 'test_models.py'
    assert doc['subsegments'][0]['cause']['working_directory'] == os.getcwd()
    assert doc['cause'] == record['id']


def test_new_exception_replaces_cause_id(caplog):
    segment = Segment('svc')
    sub = Subsegment('child', 'local', segment)
    exc = _raise_and_record(sub)
    segment.add_exception(exc, [])
    _raise_and_record(segment, KeyError)
    assert isinstance(segment.cause, dict) and len(segment.cause['exceptions']) == 1


def test_mutations_after_close_raise():
    segment = Segment('svc')
    segment.close()
    for call in (lambda: segment.put_annotation('a', 1), lambda: segment.put_metadata('a', 1),
                 lambda: segment.put_http_meta('url', 'x'), lambda: segment.set_user('u'),
                 lambda: segment.close(), lambda: segment.set_aws({}),
                 lambda: segment.add_subsegment(Subsegment('x', 'local', segment))):
        with pytest.raises(AlreadyEndedException):
            call()


def test_to_dict_has_no_none_fields_and_upstream_keys():
    segment = Segment('svc', parent_id='53995c3f42cd8ad8')
    segment.set_user('alice')
    sub = Subsegment('db', 'remote', segment)
    segment.add_subsegment(sub)
    sub.set_sql({'url': 'sqlite://x'})
    sub.close(end_time=segment.start_time + 1)
    segment.close(end_time=segment.start_time + 2)
    doc = json.loads(segment.serialize())
    assert doc['user'] == 'alice' and doc['parent_id'] == '53995c3f42cd8ad8'
    assert doc['end_time'] == segment.start_time + 2 and doc['in_progress'] is False
    assert doc['subsegments'][0]['sql'] == {'url': 'sqlite://x'}
    assert doc['subsegments'][0]['type'] == 'subsegment'

    def no_none(value):
        if isinstance(value, dict):
            return all(v is not None and no_none(v) for v in value.values())
        if isinstance(value, list):
            return all(no_none(v) for v in value)
        return True
    assert no_none(doc)
    assert not {'sampled', 'ref_counter', '_origin_trace_header', 'parent_segment'} & set(doc)


def test_dummy_entities_record_nothing(monkeypatch):
    dummy = DummySegment()
    assert dummy.trace_id == '1-00000000-000000000000000000000000' and dummy.id == '0000000000000000'
    assert not dummy.sampled
    dummy.put_annotation('a', 1)
    dummy.put_metadata('a', 1)
    dummy.put_http_meta('url', 'x')
    dummy.set_user('x')
    assert dummy.serialize() is None and not dummy.annotations and not dummy.metadata
    sub = DummySubsegment(dummy)
    dummy.add_subsegment(sub)
    assert sub.namespace == 'dummy' and not sub.sampled and sub.id == '0000000000000000'
    monkeypatch.setenv('AWS_XRAY_NOOP_ID', 'FALSE')
    real = DummySegment()
    assert TRACE_ID_RE.match(real.trace_id) and real.trace_id != '1-00000000-000000000000000000000000'
    assert ID_RE.match(DummySubsegment(real).id) and DummySubsegment(real).id != '0000000000000000'


def test_facade_segment_refuses_mutation():
    facade = FacadeSegment('facade', '53995c3f42cd8ad8', '1-5759e988-bd862e3fe1be46a994272793', True)
    assert not facade.initializing and not facade.ready_to_send()
    for call in (facade.close, facade.serialize, lambda: facade.put_annotation('a', 1),
                 lambda: facade.put_metadata('a', 1), lambda: facade.set_user('u')):
        with pytest.raises(FacadeSegmentMutationException):
            call()
    sub = Subsegment('x', 'local', facade)
    facade.add_subsegment(sub)
    assert sub.parent_id == facade.id
    assert FacadeSegment('facade', None, None, None).initializing


def test_dynamic_naming():
    naming = DefaultDynamicNaming('*.example.com', 'fallback')
    assert naming.get_name('api.EXAMPLE.com') == 'api.EXAMPLE.com'
    assert naming.get_name('other.org') == 'fallback'
    assert naming.get_name(None) == 'fallback'


def test_fields_with_shared_defaults_and_lazy_blocks_behave_as_plain_attributes():
    segment = Segment('svc')
    first = Subsegment('a', 'local', segment)
    second = Subsegment('b', 'local', segment)
    assert (first.parent_id, first.end_time, first.error, first.in_progress, first.sampled) == (None, None, False, True, True)
    assert first.type == 'subsegment' and first.sql == {} and first.subsegments == []
    first.error = True
    first.sql['url'] = 'sqlite://x'
    first.http['request'] = {'method': 'GET'}
    first.subsegments.append(second)
    assert second.error is False and second.sql == {} and second.subsegments == [] and second.http == {}
    doc = first.to_dict()
    assert doc['error'] is True and doc['sql'] == {'url': 'sqlite://x'}
    assert doc['http'] == {'request': {'method': 'GET'}} and [s['name'] for s in doc['subsegments']] == ['b']
    assert set(second.to_dict()) == {'id', 'name', 'start_time', 'in_progress', 'trace_id', 'type', 'namespace'}
    segment.subsegments = [first]
    segment.aws = {'xray': {'sdk': 'x'}}
    assert [s['name'] for s in segment.to_dict()['subsegments']] == ['a']
    assert segment.to_dict()['aws'] == {'xray': {'sdk': 'x'}}


def test_counters_never_go_below_zero():
    segment = Segment('svc')
    stray = Subsegment('never-added', 'local', segment)
    stray.close()
    assert segment.ref_counter.get_current() == 0
    counted = Subsegment('counted', 'local', segment)
    segment.add_subsegment(counted)
    assert segment.ref_counter.get_current() == 1 and not segment.ready_to_send()
    assert segment.ref_counter.increment(2) == 3 and segment.ref_counter.decrement(5) == 0
    segment.decrement_ref_counter()
    assert segment.ref_counter.get_current() == 0
    assert segment._subsegments_counter.get_current() == 1 and segment.ref_counter.reset() == 0


def test_ids_are_unique_and_redrawn_in_a_forked_child():
    ids = {Subsegment('x', 'local', Segment('svc')).id for _ in range(3000)}
    assert len(ids) == 3000 and all(ID_RE.match(i) for i in ids)
    if not hasattr(os, 'fork'):
        return
    from aws_like_sdk.core.utils import ids as id_pool
    id_pool.entity_id()  # the pool is filled in the parent
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its next ids and leave at once
        os.close(read_end)
        os.write(write_end, (id_pool.entity_id() + id_pool.trace_random()).encode())
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 100).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert len(child) == 40 and child != id_pool.entity_id() + id_pool.trace_random()


def test_subsegment_documents_have_one_key_order_whatever_they_carry():
    segment = Segment('svc')
    plain = Subsegment('plain', 'local', segment)
    segment.add_subsegment(plain)
    plain.close()
    flagged = Subsegment('flagged', 'remote', segment)
    segment.add_subsegment(flagged)
    flagged.add_error_flag()
    flagged.close()
    base = ['id', 'name', 'start_time', 'parent_id', 'in_progress', 'end_time']
    tail = ['trace_id', 'type', 'namespace']
    assert list(plain.to_dict()) == base + tail
    assert list(flagged.to_dict()) == base + ['error'] + tail
    assert plain.to_dict()['in_progress'] is False and plain.to_dict()['parent_id'] == segment.id
    open_one = Subsegment('open', 'local', segment)
    assert list(open_one.to_dict()) == ['id', 'name', 'start_time', 'in_progress'] + tail


def test_a_segment_is_claimed_for_emission_exactly_once_across_threads():
    segment = Segment('svc')
    segment.close()
    barrier = threading.Barrier(8)
    wins = []

    def claim():
        barrier.wait()
        wins.append(segment.claim_emission())

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(wins) == [False] * 7 + [True]


def test_trace_ids_carry_the_second_they_were_begun_in():
    from aws_like_sdk.core.utils.ids import trace_id_at
    ids = [trace_id_at(1700000000.2), trace_id_at(1700000000.9), trace_id_at(1700000001.0), trace_id_at(7.5)]
    assert [tid[:11] for tid in ids] == ['1-6553f100-', '1-6553f100-', '1-6553f101-', '1-00000007-']
    assert all(re.fullmatch(r'1-[0-9a-f]{8}-[0-9a-f]{24}', tid) for tid in ids)
    assert len({tid[11:] for tid in ids}) == 4
    segment = Segment('svc')
    assert segment.trace_id[2:10] == '%08x' % int(segment.start_time)


def test_segment_trace_ids_follow_the_clock_and_the_pool():
    from aws_like_sdk.core.utils import ids as id_pool
    # A prefix left over from another second (here 2023) must not be reused by a new segment.
    id_pool.trace_id_at(1700000000.5)
    segment = Segment('svc')
    assert segment.trace_id[2:10] == '%08x' % int(segment.start_time)
    # An empty pool is refilled, not an error; ids stay well formed and unique.
    id_pool._trace_randoms.clear()
    segments = [Segment('svc') for _ in range(1000)]
    trace_ids = [seg.trace_id for seg in segments]
    assert all(re.fullmatch(r'1-[0-9a-f]{8}-[0-9a-f]{24}', tid) for tid in trace_ids)
    assert len(set(trace_ids)) == len(trace_ids)
    assert all(seg.trace_id[2:10] == '%08x' % int(seg.start_time) for seg in segments)
    # An explicit trace id is kept as given.
    assert Segment('svc', traceid='1-5759e988-bd862e3fe1be46a994272793').trace_id == \
        '1-5759e988-bd862e3fe1be46a994272793'


def test_id_pools_cut_whole_blocks_into_well_formed_unique_ids():
    from aws_like_sdk.core.utils import ids as id_pool
    # More than three blocks of each kind, so refills and block boundaries are crossed.
    entity_ids = [id_pool.entity_id() for _ in range(2000)]
    trace_randoms = [id_pool.trace_random() for _ in range(1200)]
    assert all(ID_RE.match(value) for value in entity_ids) and len(set(entity_ids)) == len(entity_ids)
    assert all(re.fullmatch(r'[0-9a-f]{24}', value) for value in trace_randoms)
    assert len(set(trace_randoms)) == len(trace_randoms)
