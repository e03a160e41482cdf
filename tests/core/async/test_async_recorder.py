"""AsyncAWSXRayRecorder: capture/capture_async durations, async context managers, gather, errors."""
import asyncio

import pytest

from aws_like_sdk.core import xray_recorder
from aws_like_sdk.core.async_recorder import (AsyncAWSXRayRecorder, AsyncSegmentContextManager,
                                              AsyncSubsegmentContextManager)
from aws_like_sdk.core.context import Context
from tests.support.udp_sink import walk

SLEEP = 0.05


def test_global_recorder_is_async_recorder():
    assert isinstance(xray_recorder, AsyncAWSXRayRecorder)


@pytest.mark.parametrize('decorate', ['capture', 'capture_async', 'in_subsegment_async'])
async def test_decorated_coroutine_records_awaited_duration(children, recorder, collect, decorate):
    @getattr(recorder, decorate)('work')
    async def work(value):
        await asyncio.sleep(SLEEP)
        return value * 2

    async with recorder.in_segment_async('seg'):
        assert await work(21) == 42

    seg = collect().only()
    (sub,) = children(seg)
    assert sub['name'] == 'work' and sub['namespace'] == 'local' and sub['parent_id'] == seg['id']
    assert sub['end_time'] - sub['start_time'] >= SLEEP * 0.9
    assert seg['start_time'] <= sub['start_time'] <= sub['end_time'] <= seg['end_time']


async def test_capture_defaults_name_to_function_name(children, recorder, collect):
    @recorder.capture_async()
    async def fetch_items():
        return []

    async with recorder.in_segment_async('seg'):
        await fetch_items()
    assert [s['name'] for s in children(collect().only())] == ['fetch_items']


async def test_capture_async_on_a_method(children, recorder, collect):
    class Repo:
        def __init__(self):
            self.calls = 0

        @recorder.capture_async('Repo.load')
        async def load(self, key):
            self.calls += 1
            return key

    repo = Repo()
    async with recorder.in_segment_async('seg'):
        assert await repo.load('k') == 'k'
    assert repo.calls == 1
    assert [s['name'] for s in children(collect().only())] == ['Repo.load']


async def test_capture_async_on_sync_function_records_too(children, recorder, collect):
    @recorder.capture_async('sync')
    def plain(x):
        return x + 1

    async with recorder.in_segment_async('seg'):
        assert plain(1) == 2
    assert [s['name'] for s in children(collect().only())] == ['sync']


async def test_async_context_managers_return_entities_and_nest(children, recorder, collect):
    async with recorder.in_segment_async('seg') as seg:
        assert recorder.current_segment() is seg
        async with recorder.in_subsegment_async('outer') as outer:
            assert recorder.current_subsegment() is outer
            async with recorder.in_subsegment_async('inner', namespace='remote') as inner:
                await asyncio.sleep(0.01)
                assert inner.parent_id == outer.id
        assert recorder.current_subsegment() is None
    assert isinstance(recorder.in_segment_async('x'), AsyncSegmentContextManager)
    assert isinstance(recorder.in_subsegment_async('x'), AsyncSubsegmentContextManager)

    doc = collect().only()
    (outer_doc,) = children(doc, 'outer')
    (inner_doc,) = children(outer_doc, 'inner')
    assert inner_doc['namespace'] == 'remote'
    assert inner_doc['end_time'] - inner_doc['start_time'] >= 0.009


async def test_exceptions_are_recorded_and_reraised_unchanged(children, recorder, collect):
    class Boom(Exception):
        pass

    error = Boom('no')

    @recorder.capture_async('fails')
    async def fails():
        await asyncio.sleep(0)
        raise error

    with pytest.raises(Boom) as raised:
        async with recorder.in_segment_async('seg'):
            await fails()
    assert raised.value is error

    seg = collect().only()
    (sub,) = children(seg)
    assert sub['fault'] is True
    assert sub['cause']['exceptions'][0]['type'] == 'Boom'
    assert seg['fault'] is True
    # the segment references the exception already recorded on the subsegment
    assert seg['cause'] == sub['cause']['exceptions'][0]['id']


async def test_cancelled_captured_coroutine_is_closed_with_the_cancellation(children, recorder, collect):
    started = asyncio.Event()

    @recorder.capture_async('slow')
    async def slow():
        started.set()
        await asyncio.sleep(10)

    async with recorder.in_segment_async('seg'):
        task = asyncio.ensure_future(slow())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    (sub,) = children(collect().only())
    assert sub['in_progress'] is False
    assert sub['cause']['exceptions'][0]['type'] == 'CancelledError'


async def test_record_subsegment_async_runs_meta_processor(children, recorder, collect):
    seen = {}

    async def call(a, b=0):
        await asyncio.sleep(0)
        return a + b

    def meta(wrapped, instance, args, kwargs, return_value, exception, subsegment, stack):
        seen.update(return_value=return_value, exception=exception)
        subsegment.put_annotation('result', return_value)

    async with recorder.in_segment_async('seg'):
        result = await recorder.record_subsegment_async(call, None, (1,), {'b': 2}, 'call', 'remote', meta)
    assert result == 3 and seen == {'return_value': 3, 'exception': None}
    (sub,) = children(collect().only())
    assert sub['annotations'] == {'result': 3} and sub['namespace'] == 'remote'


async def test_failing_meta_processor_never_changes_the_result(children, recorder, collect, caplog_sdk):
    async def call():
        return 'value'

    def broken(**kwargs):
        raise RuntimeError('instrumentation bug')

    async with recorder.in_segment_async('seg'):
        assert await recorder.record_subsegment_async(call, None, (), {}, 'call', 'local', broken) == 'value'
    (sub,) = children(collect().only())
    assert sub['in_progress'] is False
    assert 'failed' in caplog_sdk.text


async def test_gather_of_1000_captured_coroutines(children, recorder, collect):
    @recorder.capture_async('leaf')
    async def leaf(i):
        await asyncio.sleep(0)
        return i

    async with recorder.in_segment_async('seg') as seg:
        results = await asyncio.gather(*(leaf(i) for i in range(1000)))
    assert results == list(range(1000))

    trees = collect(2)  # the default threshold (30) streams most leaves out as their own documents
    assert len(trees.documents) > 1
    # every subsegment was sent exactly once, none twice, and none is in progress
    assert len(trees.emitted_ids) == len(set(trees.emitted_ids)) == 1001
    tree = trees.only()
    assert tree['id'] == seg.id
    leaves = children(tree)
    assert len(leaves) == 1000
    assert all(s['name'] == 'leaf' and s['parent_id'] == seg.id and s['in_progress'] is False for s in leaves)
    assert all(s['trace_id'] == seg.trace_id for s in leaves)


async def test_nested_gathers_keep_their_nesting(children, recorder, collect):
    @recorder.capture_async('leaf')
    async def leaf(i):
        await asyncio.sleep(0.001 * (i % 3))
        return i

    @recorder.capture_async('branch')
    async def branch(n):
        return sum(await asyncio.gather(*(leaf(i) for i in range(n))))

    @recorder.capture_async('trunk')
    async def trunk():
        return await asyncio.gather(*(branch(n) for n in (3, 4, 5)))

    async with recorder.in_segment_async('seg'):
        assert await asyncio.gather(trunk(), trunk()) == [[3, 6, 10], [3, 6, 10]]

    trees = collect(2)
    assert len(trees.emitted_ids) == len(set(trees.emitted_ids)) == 1 + 2 * (1 + 3 + 12)
    tree = trees.only()
    trunks = children(tree)
    assert [t['name'] for t in trunks] == ['trunk', 'trunk']
    for trunk_doc in trunks:
        branches = children(trunk_doc)
        assert [b['name'] for b in branches] == ['branch'] * 3
        assert sorted(len(children(b, 'leaf')) for b in branches) == [3, 4, 5]
        for entity, parent in walk(trunk_doc):
            if parent is not None:
                assert entity['parent_id'] == parent['id']
                assert parent['start_time'] <= entity['start_time'] <= entity['end_time'] <= parent['end_time']


async def test_concurrent_tasks_do_not_see_each_others_subsegments(recorder):
    seen = {}

    async def worker(name):
        async with recorder.in_subsegment_async(name) as sub:
            await asyncio.sleep(0.005)
            seen[name] = (recorder.current_subsegment() is sub, sub.parent_id)

    async with recorder.in_segment_async('seg') as seg:
        await asyncio.gather(worker('a'), worker('b'), worker('c'))
        assert recorder.get_trace_entity() is seg
    assert seen == {name: (True, seg.id) for name in 'abc'}


async def test_segments_in_separate_tasks_stay_separate(children, recorder, collect):
    async def request(name):
        async with recorder.in_segment_async(name):
            async with recorder.in_subsegment_async(name + '-work'):
                await asyncio.sleep(0.005)

    await asyncio.gather(*(request('r%d' % i) for i in range(5)))
    trees = collect(5)
    assert sorted(s['name'] for s in trees.by_segment.values()) == ['r%d' % i for i in range(5)]
    for seg in trees.by_segment.values():
        assert [c['name'] for c in children(seg)] == [seg['name'] + '-work']


class _PassThroughContext(Context):
    """Overrides a stack method (calling Context's), which takes the recorder off its inline path."""

    def put_subsegment(self, subsegment):
        super().put_subsegment(subsegment)


def _shape(doc):
    # Stacks differ in how many SDK frames (filtered out) took part of the max_trace_back budget.
    volatile = {'id', 'parent_id', 'trace_id', 'start_time', 'end_time', 'working_directory', 'stack'}
    if isinstance(doc, dict):
        return {k: _shape(v) for k, v in doc.items() if k not in volatile}
    if isinstance(doc, list):
        return sorted((_shape(v) for v in doc), key=repr)
    return doc


async def test_captured_coroutines_inline_and_general_paths_send_the_same(udp_sink):
    docs = {}
    for label, context in (('inline', Context()), ('general', _PassThroughContext())):
        udp_sink.clear()
        rec = AsyncAWSXRayRecorder()
        rec.configure(sampling=False, context=context, daemon_address=udp_sink.address, service='svc')

        @rec.capture('leaf')
        async def leaf(x):
            await asyncio.sleep(0.001 * x)
            rec.put_annotation('x', x)
            return x

        @rec.capture_async('failing')
        async def failing():
            await asyncio.sleep(0)
            raise ValueError('boom')

        @rec.capture('outer')
        async def outer():
            with pytest.raises(ValueError):
                await failing()
            return sum(await asyncio.gather(leaf(1), leaf(2), leaf(3)))

        async with rec.in_segment_async('seg'):
            assert await outer() == 6
        (docs[label],) = udp_sink.settle()
    assert docs['inline']['id'] != docs['general']['id']
    assert _shape(docs['inline']) == _shape(docs['general'])
    outer_doc = docs['inline']['subsegments'][0]
    assert sorted(s['name'] for s in outer_doc['subsegments']) == ['failing', 'leaf', 'leaf', 'leaf']
    assert all(s['parent_id'] == outer_doc['id'] and s['in_progress'] is False for s in outer_doc['subsegments'])
