"""Work that outlives the subsegment (or segment) that started it never raises and is still recorded."""
import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from aws_like_sdk.core.context import LATE_METADATA_KEY, LATE_METADATA_NAMESPACE
from aws_like_sdk.ext import futures


def _late_note(doc):
    return doc['metadata'][LATE_METADATA_NAMESPACE][LATE_METADATA_KEY]


async def test_task_starting_after_its_parent_ended_goes_under_the_open_segment(recorder, collect, children,
                                                                               caplog_sdk):
    @recorder.capture_async('late')
    async def late():
        await asyncio.sleep(0.01)
        return 'done'

    async def background():
        await asyncio.sleep(0.01)  # lets the parent subsegment end first
        return await late()

    async with recorder.in_segment_async('seg') as seg:
        async with recorder.in_subsegment_async('parent') as parent:
            task = asyncio.ensure_future(background())
        assert await task == 'done'

    tree = collect().only()
    assert tree['id'] == seg.id
    parent_doc, late_doc = children(tree)
    assert (parent_doc['name'], late_doc['name']) == ('parent', 'late')
    assert late_doc['parent_id'] == seg.id and late_doc['error'] is True
    assert _late_note(late_doc)['intended_parent_id'] == parent.id
    assert _late_note(late_doc)['intended_parent_name'] == 'parent'
    assert late_doc['end_time'] - late_doc['start_time'] >= 0.009
    assert 'began after its parent' in caplog_sdk.text


async def test_late_subsegment_climbs_to_the_nearest_open_ancestor(recorder, collect, children):
    async with recorder.in_segment_async('seg'):
        async with recorder.in_subsegment_async('outer') as outer:
            async with recorder.in_subsegment_async('inner'):
                task = asyncio.ensure_future(asyncio.sleep(0.01))
                snapshot = asyncio.ensure_future(_begin_after(recorder, task, 'late'))
            await snapshot
    outer_doc = children(collect().only(), 'outer')[0]
    assert [c['name'] for c in children(outer_doc)] == ['inner', 'late']
    assert children(outer_doc, 'late')[0]['parent_id'] == outer.id


async def _begin_after(recorder, awaitable, name):
    await awaitable
    async with recorder.in_subsegment_async(name):
        pass


async def test_task_outliving_the_segment_is_sent_on_its_own(recorder, collect, children):
    release = asyncio.Event()

    @recorder.capture_async('child')
    async def child():
        return 1

    @recorder.capture_async('late')
    async def late():
        await release.wait()
        return await child()

    async def background():
        await release.wait()
        return await late()

    async with recorder.in_segment_async('seg') as seg:
        async with recorder.in_subsegment_async('parent') as parent:
            task = asyncio.ensure_future(background())
    collect()  # the segment went out complete, without the late work
    release.set()
    assert await task == 1

    trees = collect(2)
    assert len(trees.documents) == 2
    late_doc = trees.documents[1]
    assert late_doc['type'] == 'subsegment' and late_doc['name'] == 'late'
    assert late_doc['trace_id'] == seg.trace_id and late_doc['parent_id'] == parent.id
    assert _late_note(late_doc)['intended_parent_id'] == parent.id
    assert [c['name'] for c in children(late_doc)] == ['child']
    # reassembled, the late work sits under its real parent
    assert children(children(trees.only(), 'parent')[0], 'late')[0]['id'] == late_doc['id']


async def test_detached_subsegment_waits_for_its_own_open_children(recorder, collect, children):
    started, release = asyncio.Event(), asyncio.Event()
    late_ids = []

    async def lingering_child():
        async with recorder.in_subsegment_async('grandchild'):
            started.set()
            await release.wait()

    async def background():
        await segment_done.wait()
        async with recorder.in_subsegment_async('late') as late:
            late_ids.append(late.parent_id)
            grandchild = asyncio.ensure_future(lingering_child())
            await started.wait()
        return grandchild

    segment_done = asyncio.Event()
    async with recorder.in_segment_async('seg') as seg:
        task = asyncio.ensure_future(background())
    collect()
    segment_done.set()
    grandchild = await task
    assert late_ids == [seg.id]
    await asyncio.sleep(0.05)
    assert len(collect().documents) == 1  # not yet: the grandchild is still open
    release.set()
    await grandchild
    trees = collect(2)
    assert len(trees.documents) == 2
    assert [c['name'] for c in children(trees.documents[1])] == ['grandchild']
    assert all(not e['in_progress'] for e in [trees.documents[1]] + children(trees.documents[1]))


async def test_child_started_in_time_but_ending_late_delays_the_segment(recorder, collect, children):
    release = asyncio.Event()

    @recorder.capture_async('long')
    async def long_running():
        await release.wait()

    async with recorder.in_segment_async('seg'):
        async with recorder.in_subsegment_async('parent'):
            task = asyncio.ensure_future(long_running())
            await asyncio.sleep(0)  # the task begins its subsegment while the parent is open
    await asyncio.sleep(0.05)
    assert collect(0).documents == []
    release.set()
    await task
    tree = collect().only()
    (long_doc,) = children(children(tree, 'parent')[0])
    assert long_doc['name'] == 'long' and 'metadata' not in long_doc


async def test_unsampled_late_subsegment_does_not_raise(recorder, collect):
    async with recorder.in_segment_async('seg', sampling=0):
        async with recorder.in_subsegment_async('parent'):
            task = asyncio.ensure_future(_begin_after(recorder, asyncio.sleep(0.01), 'late'))
    await task
    assert collect(0).documents == []


def test_thread_pool_work_submitted_late_is_recorded(recorder, collect, children):
    futures.patch()
    try:
        with ThreadPoolExecutor(2) as pool:
            gate = threading.Event()

            def work():
                gate.wait(5)
                with recorder.in_subsegment('pool-work'):
                    return threading.current_thread().name

            with recorder.in_segment('seg') as seg:
                with recorder.in_subsegment('parent') as parent:
                    fut = pool.submit(work)
            gate.set()
            assert fut.result(5) != threading.current_thread().name
    finally:
        futures.unpatch()
    trees = collect(2)
    late_doc = trees.documents[-1]
    assert late_doc['name'] == 'pool-work' and late_doc['parent_id'] == parent.id
    assert late_doc['trace_id'] == seg.trace_id


@pytest.mark.parametrize('sampled', [True, False])
async def test_late_siblings_after_the_segment_keep_the_task_context_usable(recorder, collect, sampled):
    segment_done = asyncio.Event()
    seen = []

    async def background():
        await segment_done.wait()
        # two late siblings in a row: ending the first must not wipe this task's context
        async with recorder.in_subsegment_async('late1'):
            pass
        seen.append(recorder.get_trace_entity())
        async with recorder.in_subsegment_async('late2'):
            pass

    async with recorder.in_segment_async('seg', sampling=1 if sampled else 0) as seg:
        task = asyncio.ensure_future(background())
    segment_done.set()
    await task
    assert seen == [seg]
    docs = collect(3 if sampled else 0).documents
    assert [d['name'] for d in docs] == (['seg', 'late1', 'late2'] if sampled else [])


async def test_late_subsegment_in_lambda_goes_under_the_facade(monkeypatch, udp_sink):
    from aws_like_sdk.core.async_recorder import AsyncAWSXRayRecorder
    monkeypatch.setenv('LAMBDA_TASK_ROOT', '/var/task')
    monkeypatch.setenv('_X_AMZN_TRACE_ID', 'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1')
    recorder = AsyncAWSXRayRecorder()
    recorder.configure(daemon_address=udp_sink.address)

    async def background():
        await asyncio.sleep(0.01)
        async with recorder.in_subsegment_async('late') as late:
            return late

    async with recorder.in_subsegment_async('parent') as parent:
        task = asyncio.ensure_future(background())
    late = await task
    docs = {d['name']: d for d in udp_sink.wait_for(2)}
    assert docs['late']['parent_id'] == '53995c3f42cd8ad8' == docs['parent']['parent_id']
    assert _late_note(docs['late'])['intended_parent_id'] == parent.id
    assert late.parent_id == '53995c3f42cd8ad8'
