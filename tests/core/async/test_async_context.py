"""AsyncContext: upstream constructor and attributes, no task factory, works with any loop setup."""
import asyncio
import contextvars
import sys

import pytest

from aws_like_sdk.core.async_context import AsyncContext, TaskLocalStorage, task_factory
from aws_like_sdk.core.context import Context


def test_constructs_without_any_event_loop():
    context = AsyncContext()
    assert isinstance(context, Context)
    assert context._loop is None and context._use_task_factory is True
    assert AsyncContext(use_task_factory=False)._use_task_factory is False
    assert AsyncContext('IGNORE_ERROR').context_missing == 'IGNORE_ERROR'
    assert AsyncContext(context_missing='RUNTIME_ERROR').context_missing == 'RUNTIME_ERROR'


async def test_binds_to_the_running_loop_but_installs_no_task_factory():
    loop = asyncio.get_running_loop()
    assert AsyncContext()._loop is loop
    other = asyncio.new_event_loop()
    try:
        assert AsyncContext(loop=other)._loop is other
        assert other.get_task_factory() is None
    finally:
        other.close()
    assert loop.get_task_factory() is None


def _configure(recorder):
    recorder.configure(context=AsyncContext())
    assert isinstance(recorder.context, AsyncContext)


def _traced_run(recorder, collect, run):
    @recorder.capture_async('leaf')
    async def leaf(i):
        await asyncio.sleep(0.001)
        return i

    async def main():
        async with recorder.in_segment_async('seg') as seg:
            await asyncio.gather(*(leaf(i) for i in range(5)))
        return seg

    seg = run(main)
    tree = collect().only()
    assert tree['id'] == seg.id
    assert [s['parent_id'] for s in tree['subsegments']] == [seg.id] * 5


def test_configured_before_asyncio_run(recorder, collect):
    _configure(recorder)
    _traced_run(recorder, collect, lambda main: asyncio.run(main()))


async def test_configured_inside_a_running_loop(recorder, collect):
    _configure(recorder)

    @recorder.capture_async('leaf')
    async def leaf():
        return 1

    async with recorder.in_segment_async('seg') as seg:
        assert await asyncio.gather(leaf(), leaf()) == [1, 1]
    assert [s['parent_id'] for s in collect().only()['subsegments']] == [seg.id, seg.id]


def test_user_task_factory_is_left_intact_and_context_still_follows(recorder, collect):
    created = []

    def counting_factory(loop, coro, **kwargs):
        created.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)

    def run(main):
        loop = asyncio.new_event_loop()
        try:
            loop.set_task_factory(counting_factory)
            _configure(recorder)  # built while the user's factory is installed
            assert loop.get_task_factory() is counting_factory
            return loop.run_until_complete(main())
        finally:
            assert loop.get_task_factory() is counting_factory
            loop.close()

    _traced_run(recorder, collect, run)
    assert len(created) >= 6  # main + the five gathered leaves went through the user's factory


def test_compat_task_factory_accepts_name_and_context():
    var = contextvars.ContextVar('v', default='unset')

    async def read():
        return var.get(), asyncio.current_task().get_name()

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_task_factory(task_factory)
        try:
            ctx = contextvars.copy_context()
            ctx.run(var.set, 'from-context')
            plain = await loop.create_task(read())
            named = await loop.create_task(read(), name='named')
            kwargs = {'name': 'ctx'}
            if sys.version_info >= (3, 11):  # loops pass context= to the factory from 3.11 on
                kwargs['context'] = ctx
            with_ctx = await loop.create_task(read(), **kwargs)
            return plain, named, with_ctx
        finally:
            loop.set_task_factory(None)

    var.set('outer')
    plain, named, with_ctx = asyncio.run(main())
    assert plain[0] == 'outer' and named == ('outer', 'named') and with_ctx[1] == 'ctx'
    if sys.version_info >= (3, 11):
        assert with_ctx[0] == 'from-context'


async def test_task_local_storage_is_per_task():
    storage = TaskLocalStorage()

    async def writer(value):
        storage.value = value
        await asyncio.sleep(0)
        return storage.value

    assert await asyncio.gather(writer(1), writer(2)) == [1, 2]
    with pytest.raises(AttributeError):
        storage.value
    storage.value = 3
    storage.clear()
    with pytest.raises(AttributeError):
        storage.value


def test_task_local_storage_outside_a_task_reads_none_and_drops_writes():
    storage = TaskLocalStorage()
    storage.anything = 1
    assert storage.anything is None
    storage.clear()


async def test_clear_trace_entities_only_affects_the_current_task(recorder):
    recorder.configure(context=AsyncContext())
    async with recorder.in_segment_async('seg') as seg:
        async def clears():
            recorder.clear_trace_entities()
            return recorder.context.peek_trace_entity()

        assert await asyncio.ensure_future(clears()) is None
        assert recorder.get_trace_entity() is seg


def test_local_entities_view_for_upstream_style_readers(recorder):
    context = recorder.context
    assert context._local.entities is None
    segment = recorder.begin_segment('seg')
    sub = recorder.begin_subsegment('sub')
    assert context._local.entities == [segment, sub]
    context._local.entities.append('not stored')  # a copy: the real stack is immutable
    assert context._local.entities == [segment, sub]
    context._local.entities = [segment]
    assert recorder.get_trace_entity() is segment
    recorder.end_subsegment_by_handle(sub)
    recorder.end_segment()
    assert context._local.entities is None
