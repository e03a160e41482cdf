"""Bounded stress: 50 concurrent request-shaped tasks, nested captures and thread-pool calls."""
import asyncio
import random
from concurrent.futures import ThreadPoolExecutor

from aws_like_sdk.ext import futures
from tests.support.udp_sink import walk

REQUESTS = 50
QUERIES = 3


async def test_fifty_concurrent_requests_build_complete_correct_trees(recorder, collect):
    futures.patch()
    rng = random.Random(7)
    delays = [rng.random() * 0.005 for _ in range(REQUESTS * 10)]
    pool = ThreadPoolExecutor(8)

    def blocking_io(request_no):
        with recorder.in_subsegment('pool-io', namespace='remote') as sub:
            sub.put_annotation('request', request_no)
            return request_no

    @recorder.capture_async('query')
    async def query(request_no, i):
        await asyncio.sleep(delays[request_no * 10 + i])
        recorder.put_annotation('request', request_no)
        return i

    @recorder.capture_async('load')
    async def load(request_no):
        rows = await asyncio.gather(*(query(request_no, i) for i in range(QUERIES)))
        io = await asyncio.get_running_loop().run_in_executor(pool, blocking_io, request_no)
        return sum(rows) + io

    @recorder.capture_async('render')
    async def render(request_no, total):
        await asyncio.sleep(delays[request_no * 10 + 9])
        return 'request %d: %d' % (request_no, total)

    async def request(request_no):
        async with recorder.in_segment_async('req-%d' % request_no) as seg:
            seg.put_annotation('request', request_no)
            total = await load(request_no)
            return await render(request_no, total)

    try:
        responses = await asyncio.wait_for(
            asyncio.gather(*(request(n) for n in range(REQUESTS))), timeout=30)
    finally:
        pool.shutdown(wait=True)
        futures.unpatch()
    assert responses == ['request %d: %d' % (n, QUERIES * (QUERIES - 1) // 2 + n) for n in range(REQUESTS)]

    trees = collect(REQUESTS)
    assert len(trees.emitted_ids) == len(set(trees.emitted_ids))
    assert len(trees.by_segment) == REQUESTS
    for seg in trees.by_segment.values():
        request_no = seg['annotations']['request']
        assert seg['name'] == 'req-%d' % request_no
        load_doc, render_doc = seg['subsegments']
        assert (load_doc['name'], render_doc['name']) == ('load', 'render')
        kids = load_doc['subsegments']
        assert sorted(k['name'] for k in kids) == ['pool-io'] + ['query'] * QUERIES
        for entity, parent in walk(seg):
            assert entity['in_progress'] is False
            assert entity['trace_id'] == seg['trace_id']
            if parent is not None:
                assert entity['parent_id'] == parent['id']
                assert parent['start_time'] <= entity['start_time'] <= entity['end_time'] <= parent['end_time']
                # each request's work only ever lands in that request's tree
                assert entity.get('annotations', {}).get('request', request_no) == request_no
        assert sum(1 for _ in walk(seg)) == 1 + 2 + QUERIES + 1
