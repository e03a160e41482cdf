import logging
import threading

import pytest

from aws_like_sdk.core.context import MISSING_SEGMENT_MSG, Context
from aws_like_sdk.core.exceptions.exceptions import SegmentNotFoundException
from aws_like_sdk.core.models.segment import Segment
from aws_like_sdk.core.models.subsegment import Subsegment


def test_stack_push_pop():
    context = Context()
    segment = Segment('svc')
    context.put_segment(segment)
    sub = Subsegment('a', 'local', segment)
    context.put_subsegment(sub)
    assert context.get_trace_entity() is sub
    assert context.end_subsegment()
    assert context.get_trace_entity() is segment and not sub.in_progress
    context.end_segment()
    assert not segment.in_progress


def test_end_segment_from_subsegment_closes_owning_segment():
    context = Context()
    segment = Segment('svc')
    context.put_segment(segment)
    context.put_subsegment(Subsegment('a', 'local', segment))
    context.end_segment()
    assert not segment.in_progress


def test_end_subsegment_without_subsegment_warns(caplog):
    caplog.set_level(logging.WARNING)
    context = Context()
    context.put_segment(Segment('svc'))
    assert context.end_subsegment() is False
    assert 'No subsegment to end' in caplog.text


def test_threads_are_isolated():
    context = Context()
    context.put_segment(Segment('main'))
    seen = []

    def worker():
        seen.append(context.peek_trace_entity())
        context.put_segment(Segment('worker'))
        seen.append(context.get_trace_entity().name)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [None, 'worker']
    assert context.get_trace_entity().name == 'main'


def test_set_and_clear_trace_entities():
    context = Context(context_missing='IGNORE_ERROR')
    segment = Segment('svc')
    context.set_trace_entity(segment)
    assert context.get_trace_entity() is segment
    context.clear_trace_entities()
    assert context.get_trace_entity() is None


def test_context_missing_strategies(caplog):
    caplog.set_level(logging.ERROR)
    with pytest.raises(SegmentNotFoundException, match='cannot find the current segment'):
        Context(context_missing='RUNTIME_ERROR').get_trace_entity()
    assert Context().get_trace_entity() is None
    assert MISSING_SEGMENT_MSG in caplog.text
    caplog.clear()
    assert Context(context_missing='IGNORE_ERROR').get_trace_entity() is None
    assert caplog.text == ''


def test_env_overrides_strategy_and_invalid_values_are_refused(monkeypatch, caplog):
    monkeypatch.setenv('AWS_XRAY_CONTEXT_MISSING', 'RUNTIME_ERROR')
    assert Context(context_missing='LOG_ERROR').context_missing == 'RUNTIME_ERROR'
    context = Context()
    caplog.set_level(logging.WARNING)
    context.context_missing = 'EXPLODE'
    assert context.context_missing == 'RUNTIME_ERROR' and 'Unsupported context missing' in caplog.text


def test_end_subsegment_entity_closes_leaked_children(caplog):
    context = Context()
    segment = Segment('svc')
    context.put_segment(segment)
    outer = Subsegment('outer', 'local', segment)
    context.put_subsegment(outer)
    inner = Subsegment('inner', 'local', segment)
    context.put_subsegment(inner)
    context.end_subsegment_entity(outer)
    assert not inner.in_progress and not outer.in_progress
    assert context.get_trace_entity() is segment
    assert 'left open' in caplog.text
