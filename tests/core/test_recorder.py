import logging
import subprocess
import sys
import threading

import pytest

from aws_like_sdk import global_sdk_config
from aws_like_sdk.core.async_recorder import AsyncAWSXRayRecorder
from aws_like_sdk.core.context import Context
from aws_like_sdk.core.exceptions.exceptions import (InvalidDaemonAddressException, SegmentNameMissingException,
                                                     SegmentNotFoundException)
from aws_like_sdk.core.models.dummy_entities import DummySegment, DummySubsegment
from tests.support.udp_sink import assemble, walk


class FixedSampler:
    def __init__(self, decision):
        self.decision = decision
        self.requests = []

    def should_trace(self, sampling_req=None):
        self.requests.append(sampling_req)
        return self.decision

    def load_local_rules(self, rules):
        self.rules = rules


def test_begin_end_segment_emits_once(recorder, udp_sink):
    segment = recorder.begin_segment('svc')
    assert recorder.current_segment() is segment
    recorder.end_segment()
    assert recorder.context.peek_trace_entity() is None
    docs = udp_sink.wait_for(1)
    assert [d['id'] for d in docs] == [segment.id]


def test_segment_waits_for_open_subsegments(recorder, udp_sink):
    recorder.begin_segment('svc')
    recorder.begin_subsegment('slow')
    recorder.end_segment()
    assert udp_sink.settle(quiet=0.1) == []
    recorder.end_subsegment()
    (doc,) = udp_sink.wait_for(1)
    assert doc['subsegments'][0]['name'] == 'slow'


def test_segment_name_falls_back_to_service_and_is_required(recorder):
    assert recorder.begin_segment().name == 'test-service'
    recorder.service = None
    with pytest.raises(SegmentNameMissingException):
        recorder.begin_segment()


def test_sampling_decisions(recorder, udp_sink):
    sampler = FixedSampler('my-rule')
    recorder.configure(sampling=True, sampler=sampler)
    segment = recorder.begin_segment('svc')
    assert segment.aws['xray']['sampling_rule_name'] == 'my-rule'
    assert sampler.requests == [{'service': 'svc'}]
    recorder.end_segment()
    sampler.decision = False
    unsampled = recorder.begin_segment('svc', traceid='1-5759e988-bd862e3fe1be46a994272793')
    assert isinstance(unsampled, DummySegment) and unsampled.trace_id != '1-5759e988-bd862e3fe1be46a994272793'
    assert isinstance(recorder.begin_subsegment('child'), DummySubsegment)
    recorder.put_annotation('a', 1)
    assert not recorder.is_sampled()
    recorder.end_subsegment()
    recorder.end_segment()
    forced = recorder.begin_segment('svc', sampling=1)
    assert forced.sampled
    recorder.end_segment()
    assert isinstance(recorder.begin_segment('svc', sampling=0), DummySegment)
    recorder.end_segment()
    udp_sink.wait_for(2)  # the background sender may send them after the quiet spell below
    docs = udp_sink.settle(quiet=0.1)
    assert len(docs) == 2


def test_begin_subsegment_without_segment(recorder, caplog):
    caplog.set_level(logging.WARNING)
    assert recorder.begin_subsegment('orphan') is None
    assert 'No segment found, cannot begin subsegment orphan' in caplog.text
    recorder.context.context_missing = 'RUNTIME_ERROR'
    with pytest.raises(SegmentNotFoundException):
        recorder.begin_subsegment('orphan')


def test_capture_records_exception_and_reraises(recorder, udp_sink):
    @recorder.capture()
    def failing():
        raise KeyError('nope')

    with recorder.in_segment('svc'):
        with pytest.raises(KeyError):
            failing()
    (doc,) = udp_sink.wait_for(1)
    sub = doc['subsegments'][0]
    assert sub['name'] == 'failing' and sub['fault'] is True
    assert sub['cause']['exceptions'][0]['type'] == 'KeyError'
    assert len(sub['cause']['exceptions'][0]['stack']) <= recorder.max_trace_back


def test_in_segment_context_manager_records_and_never_swallows(recorder, udp_sink):
    with pytest.raises(RuntimeError):
        with recorder.in_segment('svc') as segment:
            with recorder.in_subsegment('inner') as sub:
                assert sub.parent_id == segment.id
                raise RuntimeError('x')
    (doc,) = udp_sink.wait_for(1)
    inner = doc['subsegments'][0]
    assert doc['cause'] == inner['cause']['exceptions'][0]['id']


def test_in_subsegment_outside_segment_yields_none(recorder):
    with recorder.in_subsegment('nothing') as sub:
        assert sub is None


def test_record_subsegment_meta_processor_and_its_failures(recorder, udp_sink):
    seen = {}

    def processor(**kwargs):
        seen.update(kwargs)
        kwargs['subsegment'].put_metadata('result', kwargs['return_value'])

    def broken_processor(**kwargs):
        raise ValueError('bug in instrumentation')

    with recorder.in_segment('svc'):
        assert recorder.record_subsegment(lambda x: x + 1, None, (1,), {}, 'add', 'remote', processor) == 2
        assert recorder.record_subsegment(lambda: 'ok', None, (), {}, 'broken', 'local', broken_processor) == 'ok'
    (doc,) = udp_sink.wait_for(1)
    assert set(seen) == {'wrapped', 'instance', 'args', 'kwargs', 'return_value', 'exception', 'subsegment', 'stack'}
    first, second = doc['subsegments']
    assert first['namespace'] == 'remote' and first['metadata']['default']['result'] == 2
    assert second['name'] == 'broken' and second['in_progress'] is False


def test_put_annotation_metadata_on_current_entity(recorder, udp_sink):
    with recorder.in_segment('svc'):
        recorder.put_annotation('on_segment', 1)
        with recorder.in_subsegment('sub'):
            recorder.put_annotation('on_sub', 'x')
            recorder.put_metadata('m', {'k': 'v'}, 'ns')
    (doc,) = udp_sink.wait_for(1)
    assert doc['annotations'] == {'on_segment': 1}
    assert doc['subsegments'][0]['annotations'] == {'on_sub': 'x'}
    assert doc['subsegments'][0]['metadata'] == {'ns': {'m': {'k': 'v'}}}


def test_sdk_disabled_runs_code_and_sends_nothing(recorder, udp_sink, monkeypatch):
    monkeypatch.setenv('AWS_XRAY_SDK_ENABLED', 'false')
    calls = []

    @recorder.capture('work')
    def work():
        calls.append(1)
        return 'result'

    segment = recorder.begin_segment('svc')
    assert isinstance(segment, DummySegment) and segment.name == 'dummy'
    assert isinstance(recorder.begin_subsegment('x'), DummySubsegment)
    assert work() == 'result' and calls == [1]
    recorder.put_annotation('a', 1)
    assert not recorder.is_sampled()
    recorder.end_subsegment()
    recorder.end_segment()
    assert udp_sink.settle(quiet=0.1) == []
    monkeypatch.delenv('AWS_XRAY_SDK_ENABLED')
    global_sdk_config.set_sdk_enabled(False)
    assert isinstance(recorder.begin_segment('svc'), DummySegment)
    global_sdk_config.set_sdk_enabled(True)
    assert not isinstance(recorder.begin_segment('svc'), DummySegment)


def test_segment_begun_before_the_sdk_is_switched_off_is_still_ended_and_sent(recorder, udp_sink):
    segment = recorder.begin_segment('in-flight')
    global_sdk_config.set_sdk_enabled(False)
    try:
        recorder.end_segment_by_handle(segment)
    finally:
        global_sdk_config.set_sdk_enabled(True)
    assert not segment.in_progress
    (doc,) = udp_sink.wait_for(1)
    assert doc['id'] == segment.id and doc['name'] == 'in-flight' and 'end_time' in doc


def test_env_beats_set_sdk_enabled(monkeypatch):
    monkeypatch.setenv('AWS_XRAY_SDK_ENABLED', 'true')
    global_sdk_config.set_sdk_enabled(False)
    assert global_sdk_config.sdk_enabled()
    monkeypatch.setenv('AWS_XRAY_SDK_ENABLED', 'maybe')
    assert global_sdk_config.sdk_enabled()


def test_configure_environment_precedence(monkeypatch, udp_sink):
    monkeypatch.setenv('AWS_XRAY_TRACING_NAME', 'from-env')
    monkeypatch.setenv('AWS_XRAY_CONTEXT_MISSING', 'IGNORE_ERROR')
    monkeypatch.setenv('AWS_XRAY_DAEMON_ADDRESS', udp_sink.address)
    rec = AsyncAWSXRayRecorder()
    assert rec.service == 'from-env'
    rec.configure(service='from-arg', context_missing='RUNTIME_ERROR', daemon_address='127.0.0.1:9', sampling=False)
    assert rec.service == 'from-env'
    assert rec.context.context_missing == 'IGNORE_ERROR'
    assert rec.emitter.port == udp_sink.port
    with rec.in_segment():
        pass
    assert udp_sink.wait_for(1)[0]['name'] == 'from-env'


def test_configure_keeps_stream_sql_and_validates(recorder):
    recorder.configure(stream_sql=False)
    recorder.configure(sampling=False)
    assert recorder.stream_sql is False
    with pytest.raises(InvalidDaemonAddressException):
        recorder.configure(daemon_address='not an address at all')
    recorder.configure(max_trace_back=3, streaming_threshold=5, dynamic_naming='*.example.com')
    assert recorder.max_trace_back == 3 and recorder.streaming_threshold == 5
    assert recorder.dynamic_naming.get_name('nope.org') == 'test-service'


def test_streaming_threshold_sends_pieces_that_reassemble(recorder, udp_sink):
    recorder.configure(streaming_threshold=2)
    with recorder.in_segment('svc') as segment:
        with recorder.in_subsegment('sub1'):
            with recorder.in_subsegment('nested'):
                pass
        for i in range(4):
            with recorder.in_subsegment('s%d' % i):
                pass
    docs = udp_sink.wait_for(5)
    streamed = [d for d in docs if d.get('type') == 'subsegment']
    assert streamed and all(d['parent_id'] == segment.id and d['trace_id'] == segment.trace_id for d in streamed)
    (tree,) = assemble(docs).values()
    names = sorted(e['name'] for e, _ in walk(tree))
    assert names == ['nested', 's0', 's1', 's2', 's3', 'sub1', 'svc']


def test_thousand_subsegments_all_arrive_under_datagram_limit(recorder, udp_sink):
    @recorder.capture('op')
    def op(i):
        recorder.put_metadata('i', i)

    with recorder.in_segment('big') as segment:
        for i in range(1000):
            op(i)
    docs = udp_sink.settle(quiet=0.2)
    assert all(len(d) < 65507 for d in udp_sink.datagrams)
    (tree,) = assemble(docs).values()
    children = tree['subsegments']
    assert len(children) == 1000 and all(c['parent_id'] == segment.id for c in children)
    assert sorted(c['metadata']['default']['i'] for c in children) == list(range(1000))


def test_eight_threads_two_hundred_segments_no_cross_talk(recorder, udp_sink):
    def worker(n):
        for i in range(200):
            with recorder.in_segment('t%d' % n) as segment:
                segment.put_annotation('i', i)
                with recorder.in_subsegment('child-%d' % n):
                    recorder.put_annotation('thread', n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    docs = udp_sink.wait_for(1600, timeout=10)
    assert len(docs) == 1600
    for doc in docs:
        n = int(doc['name'][1:])
        (child,) = doc['subsegments']
        assert child['name'] == 'child-%d' % n and child['annotations'] == {'thread': n}
        assert child['parent_id'] == doc['id'] and child['trace_id'] == doc['trace_id']
    assert len({d['id'] for d in docs}) == 1600


def test_import_does_no_io():
    code = (
        "import socket, threading, builtins\n"
        "opened = []\n"
        "real_socket = socket.socket\n"
        "class Spy(real_socket):\n"
        "    def __init__(self, *a, **k):\n"
        "        opened.append('socket'); super().__init__(*a, **k)\n"
        "socket.socket = Spy\n"
        "real_open = builtins.open\n"
        "def spy_open(f, *a, **k):\n"
        "    if 'w' in (a[0] if a else k.get('mode', 'r')): opened.append(f)\n"
        "    return real_open(f, *a, **k)\n"
        "builtins.open = spy_open\n"
        "before = threading.active_count()\n"
        "from aws_like_sdk.core import xray_recorder\n"
        "import aws_like_sdk.core.recorder\n"
        "assert threading.active_count() == before, 'thread started'\n"
        "assert opened == [], opened\n"
        "assert xray_recorder._sampler is None\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60,
                            env={'LAMBDA_TASK_ROOT': '/var/task', 'PATH': '/usr/bin:/bin'})
    assert result.stdout.strip() == 'ok', result.stderr


def test_recorder_level_data_on_ended_entity_is_dropped_not_raised(recorder, caplog):
    segment = recorder.begin_segment('svc')
    segment.close()
    recorder.put_annotation('late', 1)
    recorder.put_metadata('late', 1)
    assert segment.annotations == {} and segment.metadata == {}
    assert 'has already ended' in caplog.text


def test_request_helper_records_the_innermost_frames(recorder, udp_sink):
    from aws_like_sdk.ext._http import IncomingRequest, begin_request

    def outer(depth):
        if depth:
            return outer(depth - 1)
        raise LookupError('deep')

    recorder.configure(max_trace_back=3)
    handle = begin_request(recorder, IncomingRequest(method='GET', url='http://h/p', host='h'))
    try:
        outer(20)
    except LookupError as exc:
        handle.finish(exception=exc)
    (doc,) = udp_sink.wait_for(1)
    stack = doc['cause']['exceptions'][0]['stack']
    assert len(stack) == 3 and all(frame['label'] == 'outer' for frame in stack)
    assert doc['http']['response']['status'] == 500 and doc['fault'] is True


def test_capture_on_methods_staticmethods_and_classmethods(recorder, udp_sink):
    class Service:
        factor = 3

        @recorder.capture('method')
        def method(self, x):
            return x * self.factor

        @recorder.capture('static')
        @staticmethod
        def static(x):
            return x + 1

        @recorder.capture('klass')
        @classmethod
        def klass(cls, x):
            return x * cls.factor

    with recorder.in_segment('svc'):
        assert Service().method(2) == 6
        assert Service.static(1) == 2 and Service().static(1) == 2
        assert Service.klass(2) == 6
    (doc,) = udp_sink.wait_for(1)
    assert [s['name'] for s in doc['subsegments']] == ['method', 'static', 'static', 'klass']
    assert Service.method.__name__ == 'method'


def test_capture_goes_through_an_overridden_record_subsegment(udp_sink):
    calls = []

    class CustomRecorder(AsyncAWSXRayRecorder):
        def record_subsegment(self, wrapped, instance, args, kwargs, name, namespace, meta_processor):
            calls.append(name)
            return super().record_subsegment(wrapped, instance, args, kwargs, name, namespace, meta_processor)

    rec = CustomRecorder()
    rec.configure(sampling=False, context=Context(), daemon_address=udp_sink.address, service='custom')

    @rec.capture('hooked')
    def work():
        return 7

    with rec.in_segment('svc'):
        assert work() == 7
    assert calls == ['hooked']
    assert udp_sink.wait_for(1)[0]['subsegments'][0]['name'] == 'hooked'


def _shape(doc):
    """A document without its ids and clock readings, for comparing two runs of the same work."""
    # Stacks differ in how many SDK frames (filtered out) took part of the max_trace_back budget.
    volatile = {'id', 'parent_id', 'trace_id', 'start_time', 'end_time', 'working_directory', 'stack'}
    if isinstance(doc, dict):
        return {k: _shape(v) for k, v in doc.items() if k not in volatile}
    if isinstance(doc, list):
        return [_shape(v) for v in doc]
    return doc


class _PassThroughContext(Context):
    """Overrides a stack method (calling Context's), which takes the recorder off its inline path."""

    def put_subsegment(self, subsegment):
        super().put_subsegment(subsegment)


def test_capture_inline_path_sends_what_the_general_path_sends(udp_sink):
    docs = {}
    for label, context in (('inline', Context()), ('general', _PassThroughContext())):
        udp_sink.clear()
        rec = AsyncAWSXRayRecorder()
        rec.configure(sampling=False, context=context, daemon_address=udp_sink.address, service='svc')
        assert (context._fast is not None) == (label == 'inline')

        @rec.capture('leaf')
        def leaf(x):
            rec.put_annotation('x', x)
            return x

        @rec.capture('failing')
        def failing():
            raise ValueError('boom')

        @rec.capture('outer')
        def outer():
            with pytest.raises(ValueError):
                failing()
            return leaf(1) + leaf(2)

        with rec.in_segment('seg'):
            assert outer() == 3
        (docs[label],) = udp_sink.settle()
    assert docs['inline']['id'] != docs['general']['id']
    assert _shape(docs['inline']) == _shape(docs['general'])
    outer_doc = docs['inline']['subsegments'][0]
    failing_doc, leaf_doc = outer_doc['subsegments'][:2]
    assert failing_doc['fault'] is True and failing_doc['cause']['exceptions'][0]['type'] == 'ValueError'
    assert leaf_doc['parent_id'] == outer_doc['id'] and leaf_doc['annotations'] == {'x': 1}


def test_capture_honours_methods_patched_on_the_recorder_and_context(recorder, monkeypatch, udp_sink):
    calls = []

    @recorder.capture('work')
    def work():
        return 1

    original_begin = recorder.begin_subsegment
    original_put = recorder.context.put_subsegment

    def begin(name, namespace='local'):
        calls.append(('begin', name))
        return original_begin(name, namespace)

    def put(subsegment):
        calls.append(('put', subsegment.name))
        return original_put(subsegment)

    with recorder.in_segment('svc'):
        work()
        assert calls == []
        with monkeypatch.context() as patched:
            patched.setattr(recorder, 'begin_subsegment', begin)
            work()
            assert calls == [('begin', 'work')]
        with monkeypatch.context() as patched:
            patched.setattr(recorder.context, 'put_subsegment', put)
            work()
            assert calls == [('begin', 'work'), ('put', 'work')]
        work()  # both patches undone: the inline path again
        assert len(calls) == 2
    (doc,) = udp_sink.wait_for(1)
    assert [s['name'] for s in doc['subsegments']] == ['work'] * 4
    assert all(s['in_progress'] is False for s in doc['subsegments'])


def test_subsegments_begun_inline_are_built_like_the_constructor_builds_them(recorder):
    from aws_like_sdk.core.models.subsegment import Subsegment
    seen = []

    @recorder.capture('work')
    def work():
        seen.append(recorder.current_subsegment())

    with recorder.in_segment('svc') as segment:
        work()
        seen.append(recorder.begin_subsegment('work'))
        reference = Subsegment('work', 'local', segment)
        reference.parent_id = segment.id
        for subsegment in seen:
            assert type(subsegment) is Subsegment
            assert list(vars(subsegment))[:len(vars(reference))] == list(vars(reference))
        recorder.end_subsegment()


def test_segments_share_the_runtime_blocks_until_one_changes_its_own(recorder, udp_sink):
    first = recorder.begin_segment('first')
    first.aws['xray']['sampling_rule_name'] = 'mine'
    first.service['version'] = '2.0'
    recorder.end_segment()
    second = recorder.begin_segment('second', sampling='rule-b')
    recorder.end_segment()
    third = recorder.begin_segment('third')
    recorder.end_segment()
    docs = {doc['name']: doc for doc in udp_sink.wait_for(3)}
    assert docs['first']['aws']['xray']['sampling_rule_name'] == 'mine'
    assert docs['first']['service']['version'] == '2.0'
    assert docs['second']['aws']['xray']['sampling_rule_name'] == 'rule-b'
    assert 'version' not in docs['second']['service']
    assert 'sampling_rule_name' not in docs['third']['aws']['xray']
    assert 'version' not in docs['third']['service']
    assert docs['third']['aws']['xray']['sdk'] == 'aws_like_sdk for Python'
    assert second.service is not third.service and third.aws is not second.aws
