"""Load: every document arrives, every tree has the right parents, every trace is complete.

The receiver runs in its own process (see receiver_proc.py) so that a receiver falling behind cannot
be mistaken for SDK loss; the emitter's own ``sent``/``dropped`` counters and the kernel's drop
counter of the receiving socket say which side lost anything.
"""
import asyncio
import threading
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest

from aws_like_sdk.core.async_recorder import AsyncAWSXRayRecorder
from aws_like_sdk.core.context import Context
from aws_like_sdk.ext import futures as futures_ext
from tests.support.udp_sink import assemble, walk

from .conftest import LONG_TIMEOUT, parse_datagram, scaled

THREADS = 8
SEGMENTS_PER_THREAD = scaled(1000, 10000)
TASKS = 1000
BATCH_EVERY = 10  # every 10th segment holds a batch big enough to be streamed
BATCH_ITEMS = 40
# Threads meet every ROUND segments while the receiver catches up. Eight threads still emit
# concurrently, but a burst stays within what an unprivileged receive buffer (2 x rmem_max) holds,
# so a receiver starved of CPU on a busy CI machine cannot turn into lost datagrams.
ROUND = 100

pytestmark = pytest.mark.timeout(LONG_TIMEOUT)


def _make_recorder(address: str) -> AsyncAWSXRayRecorder:
    recorder = AsyncAWSXRayRecorder()
    recorder.configure(sampling=False, context=Context(), daemon_address=address, service='load')
    return recorder


def _documents(receiver, recorder):
    # The emitter sends from a background thread: everything handed to it must be out first.
    assert recorder.emitter.flush(timeout=60)
    datagrams = receiver.collect()
    emitter = recorder.emitter
    # Attribute any loss before asserting completeness: the SDK counts what it failed to send,
    # the kernel counts what the receiver was too slow to take.
    assert emitter.dropped == 0, 'the SDK dropped %d documents' % emitter.dropped
    assert receiver.kernel_drops in (0, -1), 'the receiver lost %d datagrams' % receiver.kernel_drops
    assert len(datagrams) == emitter.sent
    return [parse_datagram(d) for d in datagrams]


def _thread_work(recorder, thread_index: int, results: list, barrier: threading.Barrier) -> None:
    total = 0
    for n in range(SEGMENTS_PER_THREAD):
        if n and n % ROUND == 0:
            barrier.wait()
        with recorder.in_segment('worker') as segment:
            segment.put_annotation('thread', thread_index)
            segment.put_annotation('n', n)
            with recorder.in_subsegment('handler'):
                with recorder.in_subsegment('db') as db:
                    db.put_metadata('row', {'thread': thread_index, 'n': n})
            with recorder.in_subsegment('cache'):
                pass
            if n % BATCH_EVERY == 0:
                with recorder.in_subsegment('batch'):
                    for item in range(BATCH_ITEMS):
                        with recorder.in_subsegment('item') as sub:
                            sub.put_annotation('item', item)
        total += n
    results[thread_index] = total


EXPECTED_PARENT = {'handler': 'worker', 'db': 'handler', 'cache': 'worker', 'batch': 'worker', 'item': 'batch'}


def test_threads_every_document_arrives_with_correct_trees(remote_receiver):
    recorder = _make_recorder(remote_receiver.address)
    results = [None] * THREADS
    def catch_up():
        recorder.emitter.flush(timeout=60)
        remote_receiver.drained()

    barrier = threading.Barrier(THREADS, action=catch_up, timeout=120)
    threads = [threading.Thread(target=_thread_work, args=(recorder, i, results, barrier), name='load-%d' % i)
               for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    # The application's own results are untouched by tracing.
    assert results == [sum(range(SEGMENTS_PER_THREAD))] * THREADS

    documents = _documents(remote_receiver, recorder)
    streamed = sum(1 for d in documents if d.get('type') == 'subsegment')
    assert streamed > 0, 'the batches should have been streamed out'
    segments = assemble(documents)
    assert len(segments) == THREADS * SEGMENTS_PER_THREAD
    assert len({s['trace_id'] for s in segments.values()}) == len(segments)
    seen = set()
    for segment in segments.values():
        key = (segment['annotations']['thread'], segment['annotations']['n'])
        seen.add(key)
        names = Counter()
        for entity, parent in walk(segment):
            if 'trace_id' in entity:
                assert entity['trace_id'] == segment['trace_id']
            assert entity['in_progress'] is False
            if parent is None:
                continue
            names[entity['name']] += 1
            assert entity['parent_id'] == parent['id']
            assert parent['name'] == EXPECTED_PARENT[entity['name']]
            if entity['name'] == 'db':
                assert entity['metadata']['default']['row'] == {'thread': key[0], 'n': key[1]}
        expected = {'handler': 1, 'db': 1, 'cache': 1}
        if key[1] % BATCH_EVERY == 0:
            expected.update(batch=1, item=BATCH_ITEMS)
        assert names == expected, (key, names)
    assert len(seen) == THREADS * SEGMENTS_PER_THREAD
    print('threads: segments=%d datagrams=%d streamed=%d sdk_dropped=%d kernel_drops=%d'
          % (len(segments), len(documents), streamed, recorder.emitter.dropped, remote_receiver.kernel_drops))


@pytest.fixture
def futures_patched():
    already = futures_ext.is_patched()
    futures_ext.patch()
    yield
    if not already:
        futures_ext.unpatch()


def test_concurrent_tasks_with_captured_coroutines_and_thread_pool(remote_receiver, futures_patched):
    recorder = _make_recorder(remote_receiver.address)
    pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix='load-pool')
    started = 0
    all_started = None

    def blocking(i: int) -> int:
        # Runs in a pool thread: the futures patch carries the task's context here.
        with recorder.in_subsegment('pool') as sub:
            sub.put_annotation('task', i)
        return i * 2

    @recorder.capture_async('inner')
    async def inner(i: int) -> int:
        nonlocal started
        started += 1
        if started == TASKS:
            all_started.set()
        await all_started.wait()  # every task holds its subsegments open at the same time
        return i

    @recorder.capture_async('outer')
    async def outer(i: int) -> int:
        value = await inner(i)
        doubled = await asyncio.get_running_loop().run_in_executor(pool, blocking, i)
        return value + doubled

    async def handle(i: int) -> int:
        async with recorder.in_segment_async('task') as segment:
            segment.put_annotation('task', i)
            return await outer(i)

    async def main():
        nonlocal all_started
        all_started = asyncio.Event()
        return await asyncio.wait_for(asyncio.gather(*(handle(i) for i in range(TASKS))), 120)

    try:
        results = asyncio.run(main())
    finally:
        pool.shutdown(wait=True)
    assert results == [3 * i for i in range(TASKS)]

    documents = _documents(remote_receiver, recorder)
    segments = assemble(documents)
    assert len(segments) == TASKS
    tasks_seen = set()
    for segment in segments.values():
        task = segment['annotations']['task']
        tasks_seen.add(task)
        by_name = defaultdict(list)
        for entity, parent in walk(segment):
            if parent is not None:
                by_name[entity['name']].append((entity, parent))
        assert sorted(by_name) == ['inner', 'outer', 'pool']
        (outer_doc, outer_parent), = by_name['outer']
        assert outer_parent is segment
        (_, inner_parent), = by_name['inner']
        assert inner_parent is outer_doc
        (pool_doc, pool_parent), = by_name['pool']
        assert pool_parent is outer_doc
        assert pool_doc['annotations']['task'] == task
    assert tasks_seen == set(range(TASKS))
    print('tasks: segments=%d datagrams=%d sdk_dropped=%d kernel_drops=%d'
          % (len(segments), len(documents), recorder.emitter.dropped, remote_receiver.kernel_drops))
