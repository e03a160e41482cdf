"""Deferred request segments (core/models/pending_segment.py): built only when something asks for them.

Every test drives the shared request helper with ``defer=True`` (as the aiohttp middleware does) on a
recorder that emits over real UDP to the loopback sink, and compares with what an eagerly built
segment sends.
"""
import asyncio
import contextvars
import json
import threading
import time
from unittest import mock

import pytest

from aws_like_sdk.core.context import Context
from aws_like_sdk.core.emitters.udp_emitter import UDPEmitter
from aws_like_sdk.core.models.pending_segment import PendingSegment
from aws_like_sdk.core.models.segment import Segment
from aws_like_sdk.core.recorder import AWSXRayRecorder
from aws_like_sdk.ext._http import begin_request_for

pytestmark = pytest.mark.timeout(30)

TRACE_ID = '1-5759e988-bd862e3fe1be46a994272793'
PARENT_ID = '53995c3f42cd8ad8'
# Values that differ between any two requests.
_PER_REQUEST = ('id', 'start_time', 'end_time', 'trace_id')


def _begin(recorder, defer=True, header=None, route='/items/{id}', forwarded=None):
    return begin_request_for(recorder, 'GET', 'http://example.com/items/1?q=2', 'example.com', '/items/1',
                             header, 'agent/1', '10.1.2.3', forwarded, route, None, False, defer)


def _comparable(doc):
    return {key: value for key, value in doc.items() if key not in _PER_REQUEST}


def _patched_send_entity_gets_real_segments(recorder, target):
    """With ``target.send_entity`` patched, requests begin real segments and the patch gets them;
    undone, requests are deferred again."""
    with mock.patch.object(target, 'send_entity') as sent:
        trace = _begin(recorder)
        assert trace.entity.__class__ is Segment
        trace.finish(200, 1)
        assert sent.call_args[0][0].__class__ is Segment
    assert isinstance(_begin(recorder).entity, PendingSegment)
    recorder.clear_trace_entities()


class _Collecting:
    """A custom emitter: it must always be handed real segments."""

    def __init__(self):
        self.entities = []

    def send_entity(self, entity):
        self.entities.append(entity)

    def set_daemon_address(self, address):
        pass


@pytest.mark.parametrize('status,length', [(200, 12), (204, None), (404, 3), (429, 0), (503, 7)])
@pytest.mark.parametrize('header,route,forwarded', [
    (None, '/items/{id}', None),
    ('Root=%s;Parent=%s;Sampled=1' % (TRACE_ID, PARENT_ID), None, '203.0.113.9, 10.0.0.1'),
    ('Root=%s;Sampled=?' % TRACE_ID, '/items/{id}', None),
])
def test_deferred_document_equals_the_eager_segments(recorder, udp_sink, status, length, header, route, forwarded):
    # What an EC2 plugin sets (configure(plugins=...) would query the metadata endpoint).
    recorder._origin = 'AWS::EC2::Instance'
    recorder._aws_metadata = {'xray': {'sdk': 'aws_like_sdk for Python', 'sdk_version': 'test'},
                              'ec2': {'instance_id': 'i-0123'}}
    deferred = _begin(recorder, True, header, route, forwarded)
    assert isinstance(deferred.entity, PendingSegment)
    deferred_header = deferred.header
    deferred.finish(status, length)
    eager = _begin(recorder, False, header, route, forwarded)
    assert isinstance(eager.entity, Segment)
    assert eager.header.split(';')[1:] == deferred_header.split(';')[1:]
    eager.finish(status, length)
    first, second = udp_sink.wait_for(2)
    assert _comparable(first) == _comparable(second)
    assert first['in_progress'] is False and first['end_time'] >= first['start_time']
    if header and 'Parent' in header:
        assert first['trace_id'] == second['trace_id'] == TRACE_ID
        assert first['parent_id'] == PARENT_ID
    assert first['http']['response']['status'] == status


def test_a_handler_asking_for_the_segment_gets_a_real_one_and_its_data_is_sent(recorder, udp_sink):
    trace = _begin(recorder)
    segment = recorder.current_segment()
    assert segment.__class__ is Segment
    assert recorder.current_segment() is segment
    assert trace.segment is segment
    segment.put_annotation('tenant', 'acme')
    with recorder.in_subsegment('work') as subsegment:
        subsegment.put_metadata('rows', 3)
    trace.finish(200, 5)
    (doc,) = udp_sink.wait_for(1)
    time.sleep(0.1)
    assert len(udp_sink.documents()) == 1
    assert doc['id'] == segment.id and doc['trace_id'] == segment.trace_id
    assert doc['annotations'] == {'http_route': '/items/{id}', 'tenant': 'acme'}
    assert doc['http']['request']['client_ip'] == '10.1.2.3'
    assert doc['http']['response'] == {'status': 200, 'content_length': 5}
    assert [sub['name'] for sub in doc['subsegments']] == ['work']
    assert doc['subsegments'][0]['parent_id'] == doc['id']


def test_capture_builds_the_segment_on_the_fast_path(recorder, udp_sink):
    @recorder.capture('captured')
    def work():
        return recorder.current_subsegment().name

    trace = _begin(recorder)
    assert work() == 'captured'
    trace.finish(200, 1)
    (doc,) = udp_sink.wait_for(1)
    assert [sub['name'] for sub in doc['subsegments']] == ['captured']


def test_upstream_style_entities_view_sees_the_real_segment(recorder, udp_sink):
    trace = _begin(recorder)
    (entity,) = recorder.context._local.entities
    assert entity.__class__ is Segment
    trace.finish(200, 1)
    assert udp_sink.wait_for(1)[0]['id'] == entity.id


def test_threads_that_ask_at_once_share_one_segment(recorder, udp_sink):
    trace = _begin(recorder)
    seen = []
    start = threading.Barrier(8)

    def ask():
        start.wait(5)
        segment = recorder.current_segment()
        subsegment = recorder.begin_subsegment('thread-work')
        recorder.end_subsegment_by_handle(subsegment)
        seen.append(segment)

    threads = [threading.Thread(target=contextvars.copy_context().run, args=(ask,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(seen) == 8 and all(segment is seen[0] for segment in seen)
    assert recorder.current_segment() is seen[0]
    trace.finish(200, 1)
    (doc,) = udp_sink.wait_for(1)
    assert len(doc['subsegments']) == 8


def test_asking_after_the_request_ended_gives_a_closed_segment_and_late_work_is_still_sent(recorder, udp_sink):
    trace = _begin(recorder)
    worker_context = contextvars.copy_context()  # e.g. a background task that outlives the request
    trace.finish(200, 2)
    (doc,) = udp_sink.wait_for(1)

    def late():
        segment = recorder.current_segment()
        subsegment = recorder.begin_subsegment('late-work')
        recorder.end_subsegment_by_handle(subsegment)
        return segment

    segment = worker_context.run(late)
    assert segment.id == doc['id'] and segment.in_progress is False
    docs = udp_sink.wait_for(2)
    late_doc = [d for d in docs if d.get('name') == 'late-work']
    assert len(late_doc) == 1 and late_doc[0]['parent_id'] == doc['id']
    assert late_doc[0]['trace_id'] == doc['trace_id']
    assert len([d for d in docs if d['id'] == doc['id']]) == 1  # the segment itself is not sent again


def test_materializing_while_the_request_ends_never_loses_or_doubles_a_document(recorder, udp_sink):
    rounds = 200
    for _ in range(rounds):
        trace = _begin(recorder)
        pending = trace.entity
        go = threading.Event()
        thread = threading.Thread(target=lambda: (go.wait(5), pending.materialize()))
        thread.start()
        go.set()
        trace.finish(200, 1)
        thread.join(5)
        assert pending.materialize().in_progress is False
    docs = udp_sink.wait_for(rounds, timeout=10)
    time.sleep(0.2)
    docs = udp_sink.documents()
    assert len(docs) == rounds
    assert len({doc['id'] for doc in docs}) == rounds
    assert all(doc['in_progress'] is False and doc['http']['response']['status'] == 200 for doc in docs)


def test_custom_emitters_and_custom_contexts_get_real_segments(recorder):
    emitter = _Collecting()
    recorder.configure(emitter=emitter)
    trace = _begin(recorder)
    assert trace.entity.__class__ is Segment
    trace.finish(200, 1)
    assert [entity.__class__ for entity in emitter.entities] == [Segment]

    class OwnContext(Context):
        def get_trace_entity(self):
            return super().get_trace_entity()

    recorder.configure(emitter=_Collecting(), context=OwnContext())
    assert _begin(recorder).entity.__class__ is Segment


def test_an_emitter_swapped_mid_request_still_gets_a_real_segment(recorder):
    trace = _begin(recorder)
    assert isinstance(trace.entity, PendingSegment)
    emitter = _Collecting()
    recorder.configure(emitter=emitter)
    trace.finish(404, 1)
    (segment,) = emitter.entities
    assert segment.__class__ is Segment and segment.error is True
    assert segment.http['response'] == {'status': 404, 'content_length': 1}


def test_a_rule_name_decision_or_an_exception_takes_the_real_segment(recorder, udp_sink):
    class RuleSampler:
        def should_trace(self, request):
            return 'my-rule'

    recorder.configure(sampling=True, sampler=RuleSampler())
    trace = _begin(recorder)
    assert trace.entity.__class__ is Segment
    trace.finish(200, 1)
    recorder.configure(sampling=False)
    failing = _begin(recorder)
    assert isinstance(failing.entity, PendingSegment)
    try:
        raise ValueError('handler failed')
    except ValueError as exc:
        failing.finish(exception=exc)
    ruled, failed = udp_sink.wait_for(2)
    assert ruled['aws']['xray']['sampling_rule_name'] == 'my-rule'
    assert failed['fault'] is True and failed['http']['response']['status'] == 500
    assert failed['cause']['exceptions'][0]['type'] == 'ValueError'


def test_unsampled_requests_are_not_deferred(recorder, udp_sink):
    trace = _begin(recorder, header='Root=%s;Sampled=0' % TRACE_ID)
    assert trace.entity.sampled is False
    trace.finish(200, 1)
    time.sleep(0.1)
    assert udp_sink.documents() == []


def test_tasks_started_by_the_handler_share_the_segment(recorder, udp_sink):
    async def request():
        trace = _begin(recorder)

        async def child(name):
            async with recorder.in_subsegment_async(name):
                await asyncio.sleep(0)
            return recorder.current_segment()

        segments = await asyncio.gather(*(child('task-%d' % index) for index in range(5)))
        trace.finish(200, 1)
        return segments

    segments = asyncio.run(request())
    assert all(segment is segments[0] for segment in segments)
    (doc,) = udp_sink.wait_for(1)
    assert sorted(sub['name'] for sub in doc['subsegments']) == ['task-%d' % index for index in range(5)]


def test_emitters_opt_in_to_documents_and_overriding_subclasses_do_not_inherit_it(recorder, udp_sink):
    class Serializing:
        accepts_documents = True

        def __init__(self):
            self.payloads = []

        def send_entity(self, entity):
            self.payloads.append(entity.serialize())

        def set_daemon_address(self, address):
            pass

    class Inspecting(UDPEmitter):
        def send_entity(self, entity):
            self.last = entity
            super().send_entity(entity)

    class Configured(UDPEmitter):
        pass

    assert UDPEmitter(udp_sink.address).accepts_documents is True
    assert Configured(udp_sink.address).accepts_documents is True
    assert Inspecting(udp_sink.address).accepts_documents is False
    serializing = Serializing()
    recorder.configure(emitter=serializing)
    trace = _begin(recorder)
    assert isinstance(trace.entity, PendingSegment)
    trace.finish(201, 4)
    (payload,) = serializing.payloads
    assert json.loads(payload)['http']['response'] == {'status': 201, 'content_length': 4}

    inspecting = Inspecting(udp_sink.address)
    recorder.configure(emitter=inspecting)
    trace = _begin(recorder)
    assert trace.entity.__class__ is Segment
    trace.finish(200, 1)
    assert inspecting.last.__class__ is Segment
    assert udp_sink.wait_for(1)[0]['id'] == inspecting.last.id


def test_a_route_whose_requests_ask_for_their_segment_begins_real_segments_from_then_on(recorder, udp_sink):
    first = _begin(recorder, route='/orders/{id}')
    assert isinstance(first.entity, PendingSegment)
    first.finish(200, 1)
    asking = _begin(recorder, route='/orders/{id}')
    assert isinstance(asking.entity, PendingSegment)
    recorder.current_segment().put_annotation('customer', 'c-1')
    asking.finish(200, 1)
    following = _begin(recorder, route='/orders/{id}')
    assert following.entity.__class__ is Segment
    following.finish(200, 1)
    other = _begin(recorder, route='/health')
    assert isinstance(other.entity, PendingSegment)
    other.finish(200, 1)
    docs = udp_sink.wait_for(4)
    assert [doc['annotations'] for doc in docs] == [
        {'http_route': '/orders/{id}'}, {'http_route': '/orders/{id}', 'customer': 'c-1'},
        {'http_route': '/orders/{id}'}, {'http_route': '/health'}]


def test_a_failing_request_does_not_mark_its_route(recorder, udp_sink):
    failing = _begin(recorder, route=None)
    failing.finish(exception=RuntimeError('boom'))
    assert isinstance(_begin(recorder, route=None).entity, PendingSegment)
    recorder.clear_trace_entities()


def test_routes_that_are_not_strings_are_not_deferred(recorder, udp_sink):
    class Template:
        __hash__ = None  # unhashable: must not break the request

        def __str__(self):
            return '/t/{id}'

    trace = _begin(recorder, route=Template())
    assert trace.entity.__class__ is Segment
    trace.finish(200, 1)
    assert udp_sink.wait_for(1)[0]['annotations'] == {'http_route': '/t/{id}'}


def test_a_segment_built_while_the_request_ends_is_never_handed_out_open(recorder, udp_sink, monkeypatch):
    built, go = threading.Event(), threading.Event()
    real_build = PendingSegment._build

    def slow_build(self):
        segment = real_build(self)
        built.set()
        go.wait(5)  # the request ends here, between building and publishing
        return segment

    trace = _begin(recorder)
    pending = trace.entity
    worker_context = contextvars.copy_context()
    monkeypatch.setattr(PendingSegment, '_build', slow_build)
    results = []
    slow = threading.Thread(target=lambda: results.append(worker_context.run(recorder.current_segment)))
    slow.start()
    assert built.wait(5)
    monkeypatch.setattr(PendingSegment, '_build', real_build)
    trace.finish(503, 1)
    other = pending.materialize()
    go.set()
    slow.join(5)
    (doc,) = udp_sink.wait_for(1)
    assert doc['fault'] is True and doc['http']['response']['status'] == 503
    for segment in (results[0], other):
        assert segment.in_progress is False and segment.fault is True and segment.id == doc['id']
        assert segment._emission_token == []

    def late():
        subsegment = recorder.begin_subsegment('late-work')
        recorder.end_subsegment_by_handle(subsegment)

    worker_context.run(late)
    docs = udp_sink.wait_for(2)
    assert [d['name'] for d in docs] == [doc['name'], 'late-work'] and docs[1]['parent_id'] == doc['id']


def test_emitters_that_may_read_segments_are_not_given_documents(recorder, udp_sink):
    class AuditMixin:
        def send_entity(self, entity):
            self.flags = (entity.error, entity.fault)
            super().send_entity(entity)

    class Audited(AuditMixin, UDPEmitter):
        pass

    audited = Audited(udp_sink.address)
    recorder.configure(emitter=audited)
    trace = _begin(recorder)
    assert trace.entity.__class__ is Segment
    trace.finish(404, 1)
    assert audited.flags == (True, False)
    assert udp_sink.wait_for(1)[0]['error'] is True

    recorder.configure(emitter=mock.MagicMock())
    assert _begin(recorder).entity.__class__ is Segment
    recorder.clear_trace_entities()

    emitter = UDPEmitter(udp_sink.address)
    recorder.configure(emitter=emitter)
    _patched_send_entity_gets_real_segments(recorder, emitter)
    assert emitter.accepts_documents is True


def test_a_recorder_with_its_own_segment_methods_is_not_bypassed(udp_sink):
    class Tagging(AWSXRayRecorder):
        def begin_segment(self, *args, **kwargs):
            segment = super().begin_segment(*args, **kwargs)
            segment.put_metadata('env', 'prod')
            return segment

    tagging = Tagging()
    tagging.configure(sampling=False, context=Context(), daemon_address=udp_sink.address, service='svc')
    trace = _begin(tagging)
    assert trace.entity.__class__ is Segment
    trace.finish(200, 1)
    assert udp_sink.wait_for(1)[0]['metadata'] == {'default': {'env': 'prod'}}

    plain = AWSXRayRecorder()
    plain.configure(sampling=False, context=Context(), daemon_address=udp_sink.address, service='svc')
    with mock.patch.object(plain, 'end_segment_by_handle', wraps=plain.end_segment_by_handle) as ended:
        trace = _begin(plain)
        assert trace.entity.__class__ is Segment
        trace.finish(200, 1)
        assert ended.call_count == 1
    assert isinstance(_begin(plain).entity, PendingSegment)
    plain.clear_trace_entities()


def test_a_shrunk_document_leaves_the_late_segment_readable(recorder, udp_sink):
    trace = begin_request_for(recorder, 'GET', 'http://example.com/' + 'a' * 70000, 'example.com', '/', None,
                              'agent/1', '10.1.2.3', None, None, None, False, True)
    worker_context = contextvars.copy_context()
    trace.finish(200, 1)
    (doc,) = udp_sink.wait_for(1)
    assert doc['id'] == trace.entity.id
    segment = worker_context.run(recorder.current_segment)
    assert segment.__class__ is Segment and segment.in_progress is False
    assert segment.http['request']['url'].startswith('http://example.com/aaa')


def test_a_name_that_sanitises_to_nothing_and_a_second_finish_behave_as_eagerly(recorder, udp_sink):
    recorder.configure(service='(*)')
    trace = _begin(recorder)
    assert isinstance(trace.entity, PendingSegment)
    segment = recorder.current_segment()
    assert segment.name == ''
    trace.finish(200, 1)
    deferred = _begin(recorder, route='/other')
    deferred.finish(200, 1)
    pending = deferred.entity
    again = recorder.end_deferred_segment(pending, 500, 1)
    assert again.in_progress is False and pending.finish(500, 1, time.time()) is not None
    time.sleep(0.2)
    docs = udp_sink.documents()
    assert [doc['name'] for doc in docs] == ['', ''] and docs[1]['http']['response']['status'] == 200


def test_patching_the_emitter_class_or_restoring_by_assignment_is_seen(recorder, udp_sink, monkeypatch):
    emitter = UDPEmitter(udp_sink.address)
    recorder.configure(emitter=emitter)
    _patched_send_entity_gets_real_segments(recorder, UDPEmitter)

    monkeypatch.setattr(emitter, 'send_entity', lambda entity: None)
    assert emitter.accepts_documents is False
    monkeypatch.undo()  # restores by assigning the original bound method to the instance
    assert emitter.accepts_documents is True

    emitter.accepts_documents = False
    with mock.patch.object(emitter, 'send_entity'):
        pass
    assert emitter.accepts_documents is False
    assert _begin(recorder).entity.__class__ is Segment
    recorder.clear_trace_entities()


def test_racing_ends_send_the_document_once(recorder, udp_sink):
    rounds = 300
    for _ in range(rounds):
        trace = _begin(recorder, route='/race')
        pending = trace.entity
        start = threading.Barrier(2)
        results = []

        def end():
            start.wait(5)
            results.append(recorder.end_deferred_segment(pending, 200, 1))

        threads = [threading.Thread(target=end) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        assert sorted(result is None for result in results) == [False, True]
        assert [result for result in results if result is not None][0].in_progress is False
    udp_sink.wait_for(rounds, timeout=10)
    time.sleep(0.2)
    docs = udp_sink.documents()
    assert len(docs) == rounds and len({doc['id'] for doc in docs}) == rounds


def test_a_reader_after_the_end_sees_the_outcome_that_was_sent(recorder, udp_sink):
    for status, flags in ((503, (False, True, False)), (429, (True, False, True)), (404, (True, False, False))):
        trace = _begin(recorder, route='/late/%d' % status)
        worker_context = contextvars.copy_context()
        trace.finish(status, 1)
        segment = worker_context.run(recorder.current_segment)
        assert (segment.error, segment.fault, segment.throttle) == flags
        assert segment.http['response'] == {'status': status, 'content_length': 1}
    docs = udp_sink.wait_for(3)
    assert [doc['http']['response']['status'] for doc in docs] == [503, 429, 404]
