"""bind_trace_context / TracedThread: carrying the trace context into threads started by hand."""
import threading

import pytest

from aws_like_sdk.core.context_propagation import TracedThread, bind_trace_context


def _join(*threads):
    for thread in threads:
        thread.join(5)
        assert not thread.is_alive()


def test_plain_thread_has_no_context(recorder):
    recorder.configure(context_missing='IGNORE_ERROR')
    seen = []
    with recorder.in_segment('seg'):
        thread = threading.Thread(target=lambda: seen.append(recorder.context.peek_trace_entity()))
        thread.start()
        _join(thread)
    assert seen == [None]


def test_bound_target_records_under_the_binding_subsegment(recorder, collect, children):
    def work(n, label):
        with recorder.in_subsegment('thread-%s' % label):
            return n * 2

    results = []
    with recorder.in_segment('seg'):
        with recorder.in_subsegment('parent') as parent:
            bound = bind_trace_context(work)
            threads = [threading.Thread(target=lambda i=i: results.append(bound(i, label=i))) for i in range(4)]
            for thread in threads:
                thread.start()
            _join(*threads)
    assert sorted(results) == [0, 2, 4, 6]
    assert bound.__name__ == 'work' and bound.__wrapped__ is work

    parent_doc = children(collect().only(), 'parent')[0]
    assert sorted(c['name'] for c in children(parent_doc)) == ['thread-%d' % i for i in range(4)]
    assert {c['parent_id'] for c in children(parent_doc)} == {parent.id}


def test_changes_inside_a_bound_call_do_not_leak(recorder):
    with recorder.in_segment('seg') as seg:
        bound = bind_trace_context(lambda: recorder.begin_subsegment('left-open'))
        sub = bound()
        assert recorder.get_trace_entity() is seg  # the caller's stack is untouched
        assert bound() is not sub  # each call starts again from the bound snapshot
        recorder.end_subsegment_by_handle(sub)


def test_bound_callable_raises_the_application_exception_unchanged(recorder):
    error = KeyError('k')

    def fails():
        raise error

    with recorder.in_segment('seg'):
        bound = bind_trace_context(fails)
    with pytest.raises(KeyError) as raised:
        bound()
    assert raised.value is error


def test_traced_thread_runs_in_the_creating_context(recorder, collect, children):
    with recorder.in_segment('seg') as seg:
        thread = TracedThread(target=lambda: recorder.capture('in-thread')(lambda: None)(), name='worker')
        thread.start()
        _join(thread)
    assert thread.name == 'worker'
    (sub,) = children(collect().only())
    assert sub['name'] == 'in-thread' and sub['parent_id'] == seg.id


def test_traced_thread_subclass_calling_super_run(recorder):
    seen = []

    class Worker(TracedThread):
        def run(self):
            seen.append(recorder.context.peek_trace_entity())
            super().run()

    with recorder.in_segment('seg'):
        worker = Worker()
    worker.start()
    _join(worker)
    assert seen == [None]  # only what runs inside super().run() gets the context

    class GoodWorker(TracedThread):
        def run(self):
            super().run()

    with recorder.in_segment('seg2') as seg:
        good = GoodWorker(target=lambda: seen.append(recorder.context.peek_trace_entity()))
    good.start()
    _join(good)
    assert seen[-1] is seg
