"""Inside Lambda: a recorder built with LAMBDA_TASK_ROOT set, emitting to a real UDP sink."""
import os
import threading

import pytest

from aws_like_sdk import global_sdk_config
from aws_like_sdk.core.async_recorder import AsyncAWSXRayRecorder
from aws_like_sdk.core.exceptions.exceptions import FacadeSegmentMutationException
from aws_like_sdk.core.lambda_launcher import TOUCH_FILE_PATH, LambdaContext, check_in_lambda
from aws_like_sdk.core.models.dummy_entities import DummySegment
from aws_like_sdk.core.models.facade_segment import FacadeSegment
from tests.support.udp_sink import assemble, walk

ROOT_A = '1-5759e988-bd862e3fe1be46a994272793'
ROOT_B = '1-5759e989-aaaaaaaaaaaaaaaaaaaaaaaa'
PARENT_A = '53995c3f42cd8ad8'
PARENT_B = '6f49dd9d7a798820'


def header(root=ROOT_A, parent=PARENT_A, sampled='1'):
    parts = ['Root=%s' % root if root else None, 'Parent=%s' % parent if parent else None,
             'Sampled=%s' % sampled if sampled is not None else None]
    return ';'.join(p for p in parts if p)


@pytest.fixture
def lambda_env(monkeypatch):
    monkeypatch.setenv('LAMBDA_TASK_ROOT', '/var/task')
    monkeypatch.setenv('_X_AMZN_TRACE_ID', header())
    return monkeypatch


@pytest.fixture
def lambda_recorder(lambda_env, udp_sink):
    existed = os.path.exists(TOUCH_FILE_PATH)
    rec = AsyncAWSXRayRecorder()
    rec.configure(daemon_address=udp_sink.address)
    yield rec
    rec.clear_trace_entities()
    assert existed or not os.path.exists(TOUCH_FILE_PATH), 'the recorder must not write files'


def test_recorder_built_in_lambda_uses_the_lambda_seams(lambda_recorder):
    assert isinstance(lambda_recorder.context, LambdaContext)
    assert lambda_recorder.streaming_threshold == 0
    assert type(lambda_recorder.sampler).__name__ == 'LocalSampler'
    assert lambda_recorder.context.context_missing is None


def test_check_in_lambda_reads_only_the_environment(monkeypatch):
    monkeypatch.delenv('LAMBDA_TASK_ROOT', raising=False)
    assert check_in_lambda() is None
    monkeypatch.setenv('LAMBDA_TASK_ROOT', '/var/task')
    assert isinstance(check_in_lambda(), LambdaContext)


def test_subsegments_are_independent_documents_under_the_facade(lambda_recorder, udp_sink):
    facade = lambda_recorder.current_segment()
    assert isinstance(facade, FacadeSegment)
    assert (facade.trace_id, facade.id, facade.sampled) == (ROOT_A, PARENT_A, True)
    with lambda_recorder.in_subsegment('handler') as outer:
        with lambda_recorder.in_subsegment('inner'):
            lambda_recorder.put_annotation('order', 7)
        # The finished inner subsegment is streamed out while its parent is still open.
        (first,) = udp_sink.wait_for(1)
        assert first['name'] == 'inner' and first['parent_id'] == outer.id
    docs = udp_sink.wait_for(2)
    assert [d['name'] for d in docs] == ['inner', 'handler']
    assert all(d['type'] == 'subsegment' and d['trace_id'] == ROOT_A for d in docs)
    handler = docs[1]
    assert handler['parent_id'] == PARENT_A
    assert docs[0]['annotations'] == {'order': 7}
    # Nothing claims to be the Lambda-owned segment itself.
    assert not assemble(docs)


def test_a_new_trace_header_gives_a_new_facade(lambda_recorder, udp_sink, lambda_env):
    with lambda_recorder.in_subsegment('first'):
        pass
    lambda_env.setenv('_X_AMZN_TRACE_ID', header(ROOT_B, PARENT_B))
    with lambda_recorder.in_subsegment('second'):
        pass
    docs = udp_sink.wait_for(2)
    assert [(d['name'], d['trace_id'], d['parent_id']) for d in docs] == [
        ('first', ROOT_A, PARENT_A), ('second', ROOT_B, PARENT_B)]


def test_new_invocation_drops_subsegments_left_open(lambda_recorder, udp_sink, lambda_env):
    lambda_recorder.begin_subsegment('leaked')
    lambda_env.setenv('_X_AMZN_TRACE_ID', header(ROOT_B, PARENT_B))
    assert lambda_recorder.get_trace_entity().trace_id == ROOT_B
    assert isinstance(lambda_recorder.get_trace_entity(), FacadeSegment)


def test_captured_handler_and_threads_share_the_invocation(lambda_recorder, udp_sink):
    @lambda_recorder.capture('handler')
    def handler(event, context):
        results = []

        def worker():
            # A fresh thread has an empty context; the facade is rebuilt from the environment.
            with lambda_recorder.in_subsegment('worker'):
                results.append(lambda_recorder.current_segment().trace_id)

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(5)
        return results

    assert handler({}, None) == [ROOT_A]
    docs = {d['name']: d for d in udp_sink.wait_for(2)}
    assert docs['handler']['parent_id'] == PARENT_A
    assert docs['worker']['parent_id'] == PARENT_A and docs['worker']['trace_id'] == ROOT_A


@pytest.mark.parametrize('trace_header', [None, header(sampled=None), header(parent=None), 'garbage'])
def test_missing_or_incomplete_header_discards_subsegments(lambda_recorder, udp_sink, lambda_env, caplog_sdk,
                                                           trace_header):
    if trace_header is None:
        lambda_env.delenv('_X_AMZN_TRACE_ID')
    else:
        lambda_env.setenv('_X_AMZN_TRACE_ID', trace_header)
    assert isinstance(lambda_recorder.get_trace_entity(), DummySegment)
    with lambda_recorder.in_subsegment('init-work'):
        lambda_recorder.put_annotation('ignored', True)
    assert udp_sink.settle(quiet=0.1) == []
    if trace_header is None:
        assert 'discarded due to Lambda worker still initializing' in caplog_sdk.text


def test_unsampled_invocation_emits_nothing(lambda_recorder, udp_sink, lambda_env):
    lambda_env.setenv('_X_AMZN_TRACE_ID', header(sampled='0'))
    with lambda_recorder.in_subsegment('skipped') as sub:
        assert sub.sampled is False
    assert udp_sink.settle(quiet=0.1) == []


def test_segments_cannot_be_created_or_ended(lambda_recorder, udp_sink, caplog_sdk):
    segment = lambda_recorder.begin_segment('mine')
    assert segment is not None and segment.name == 'mine'
    assert isinstance(lambda_recorder.current_segment(), FacadeSegment)
    lambda_recorder.end_segment()
    assert 'Cannot create segments inside Lambda function' in caplog_sdk.text
    assert 'Cannot end segment inside Lambda function' in caplog_sdk.text
    assert udp_sink.settle(quiet=0.1) == []


def test_facade_mutation_raises(lambda_recorder):
    facade = lambda_recorder.current_segment()
    for mutate in (lambda: facade.put_annotation('k', 'v'), lambda: facade.put_metadata('k', 'v'),
                   lambda: facade.put_http_meta('status', 200), lambda: facade.close(),
                   lambda: facade.add_exception(ValueError('x'), []), lambda: facade.set_user('u'),
                   lambda: facade.serialize()):
        with pytest.raises(FacadeSegmentMutationException):
            mutate()
    with pytest.raises(FacadeSegmentMutationException):
        lambda_recorder.put_annotation('on_facade', 1)
    assert facade.ready_to_send() is False


def test_disabled_sdk_forces_the_facade_unsampled(lambda_recorder, udp_sink):
    global_sdk_config.set_sdk_enabled(False)
    assert lambda_recorder.context.get_trace_entity().sampled is False
    with lambda_recorder.in_subsegment('off'):
        pass
    assert lambda_recorder.is_sampled() is False
    assert udp_sink.settle(quiet=0.1) == []


def test_disabled_through_the_environment_as_well(lambda_env, udp_sink):
    lambda_env.setenv('AWS_XRAY_SDK_ENABLED', 'false')
    rec = AsyncAWSXRayRecorder()
    rec.configure(daemon_address=udp_sink.address)
    assert rec.context.get_trace_entity().sampled is False
    with rec.in_subsegment('off'):
        pass
    assert udp_sink.settle(quiet=0.1) == []
