"""The futures patch: thread pools and run_in_executor see the submitting trace context."""
import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from aws_like_sdk.core.suppression import is_suppressed, suppress_tracing
from aws_like_sdk.ext import futures
from tests.support.udp_sink import walk

VAR = contextvars.ContextVar('futures_test_var', default='unset')


def _subsegments(doc):
    return [entity for entity, parent in walk(doc) if parent is not None]


def test_patch_is_idempotent_and_reversible():
    original = ThreadPoolExecutor.__dict__['submit']
    assert not futures.is_patched()
    futures.patch()
    futures.patch()
    assert futures.is_patched()
    assert ThreadPoolExecutor.__dict__['submit'].__wrapped__ is original
    futures.unpatch()
    futures.unpatch()
    assert ThreadPoolExecutor.__dict__['submit'] is original


def test_without_patch_workers_do_not_see_the_context():
    VAR.set('caller')
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(VAR.get).result(5) == 'unset'


def test_submit_runs_in_a_copy_of_the_submitting_context(patched):
    VAR.set('caller')

    def read_and_write(suffix, *, sep='-'):
        seen = VAR.get()
        VAR.set('changed')
        return seen + sep + suffix

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(read_and_write, 'a', sep='+').result(5) == 'caller+a'
        # the same worker thread, next job: starts again from the caller's context
        assert pool.submit(read_and_write, 'b').result(5) == 'caller-b'
        assert list(pool.map(lambda _: VAR.get(), range(3))) == ['caller'] * 3
    assert VAR.get() == 'caller'


def test_results_and_exceptions_are_unchanged(patched):
    error = ValueError('bad')

    def fails():
        raise error

    with ThreadPoolExecutor(2) as pool:
        assert pool.submit(divmod, 7, 2).result(5) == (3, 1)
        with pytest.raises(ValueError) as raised:
            pool.submit(fails).result(5)
    assert raised.value is error


def test_bad_submit_calls_fail_as_without_the_patch(patched):
    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(TypeError):
            pool.submit()
    pool = ThreadPoolExecutor(1)
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(print)


def test_subclasses_are_covered(patched):
    class Named(ThreadPoolExecutor):
        def submit(self, fn, *args, **kwargs):
            return super().submit(fn, *args, **kwargs)

    VAR.set('caller')
    with Named(1) as pool:
        assert pool.submit(VAR.get).result(5) == 'caller'


def test_suppression_travels_with_the_work(patched):
    with ThreadPoolExecutor(1) as pool:
        with suppress_tracing():
            assert pool.submit(is_suppressed).result(5) is True
        assert pool.submit(is_suppressed).result(5) is False


def test_thread_pool_subsegments_get_the_right_parents(patched, recorder, udp_sink):
    @recorder.capture('pooled')
    def pooled(i):
        with recorder.in_subsegment('nested'):
            return threading.current_thread().name

    with recorder.in_segment('seg') as seg:
        with recorder.in_subsegment('fan-out') as parent:
            with ThreadPoolExecutor(4) as pool:
                names = list(pool.map(pooled, range(8)))
    assert threading.current_thread().name not in names

    (doc,) = udp_sink.wait_for(1)
    assert doc['id'] == seg.id
    (fan_out,) = doc['subsegments']
    pooled_docs = fan_out['subsegments']
    assert len(pooled_docs) == 8 and {p['parent_id'] for p in pooled_docs} == {parent.id}
    for p in pooled_docs:
        assert [n['parent_id'] for n in p['subsegments']] == [p['id']]
    assert len({e['id'] for e in _subsegments(doc)}) == 17


async def test_run_in_executor_sees_the_task_context(patched, recorder, udp_sink):
    def blocking(tag):
        with recorder.in_subsegment('blocking-%s' % tag):
            return tag

    @recorder.capture_async('handler')
    async def handler(tag):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, blocking, tag)

    async with recorder.in_segment_async('seg') as seg:
        assert await asyncio.gather(handler('a'), handler('b')) == ['a', 'b']
        assert await asyncio.to_thread(lambda: recorder.get_trace_entity()) is seg

    (doc,) = udp_sink.wait_for(1)
    handlers = doc['subsegments']
    assert sorted(h['subsegments'][0]['name'] for h in handlers) == ['blocking-a', 'blocking-b']
    for h in handlers:
        assert h['parent_id'] == seg.id and h['subsegments'][0]['parent_id'] == h['id']
        assert h['end_time'] >= h['subsegments'][0]['end_time']


def test_patch_all_style_names_are_exposed():
    assert futures.__all__ == ['patch', 'unpatch', 'is_patched']


def test_patcher_name_futures_turns_the_patch_on_and_off():
    patcher = pytest.importorskip('aws_like_sdk.core.patcher')
    patcher.patch(['futures'])
    try:
        assert futures.is_patched()
        VAR.set('caller')
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(VAR.get).result(5) == 'caller'
    finally:
        patcher.unpatch(['futures'])
    assert not futures.is_patched()
