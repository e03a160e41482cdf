"""os.fork() in a pre-fork server, taken while other threads hold every lock the SDK owns.

A child inherits a copy of each lock in the state it had at fork time, but not the thread that held
it: a lock held then stays held forever in the child. The children here must still trace requests
(new socket, restarted pollers, streaming, late subsegments, log-once) and answer them unchanged.
"""
import contextvars
import faulthandler
import os
import signal
import socket
import sys
import threading
import traceback

import pytest

from aws_like_sdk.core import context as context_module
from aws_like_sdk.core.async_recorder import AsyncAWSXRayRecorder
from aws_like_sdk.core.context import Context
from aws_like_sdk.core.sampling.sampler import DefaultSampler
from aws_like_sdk.core.utils import ids as ids_module
from aws_like_sdk.ext import _patching

from .conftest import wait_until
from .sampling_server import SamplingServer

pytestmark = pytest.mark.skipif(not hasattr(os, 'fork'), reason='needs os.fork')

WORKERS = 3
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


def sdk_locks(*roots):
    """Every lock reachable from ``roots`` through objects of the aws_like_sdk package."""
    found, seen, todo = [], set(), list(roots)
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, _LOCK_TYPES):
            # A lock held while idle (the emitter's sender-wakeup lock) is not one a thread takes
            # and releases; the child replaces it anyway.
            if not getattr(obj, "locked", lambda: False)():
                found.append(obj)
            continue
        if isinstance(obj, (list, tuple, set)):
            todo.extend(obj)
            continue
        if not type(obj).__module__.startswith('aws_like_sdk'):
            continue
        todo.extend(getattr(obj, '__dict__', {}).values())
        for slot in getattr(type(obj), '__slots__', ()):
            todo.append(getattr(obj, slot, None))
    return found


@pytest.fixture
def sampling_server():
    server = SamplingServer()
    yield server
    server.close()


def _child_serve(recorder, sampler, listener, parent_client_id):
    """One pre-forked worker: answer one connection, tracing it in every way that takes a lock."""
    listener.settimeout(30)
    conn, _ = listener.accept()
    with conn:
        number = int(conn.makefile('rb').readline())
        with recorder.in_segment('prefork-child') as segment:
            segment.put_annotation('pid', os.getpid())
            for i in range(4):  # over the streaming threshold of 2: the streaming lock is taken
                with recorder.in_subsegment('step-%d' % i):
                    pass
            broken = _patching.guard(_broken_wrapper)
            assert broken(lambda x: x * 2, None, (number,), {}) == number * 2  # the log-once lock
        # A subsegment begun after its whole segment ended takes the late-subsegment lock.
        late_ctx = _late_context(recorder)
        late_ctx.run(_late_work, recorder)
        conn.sendall(b'%d\n' % (number * 2))
    # The child polls on its own: new pollers, a new client id, fresh rules.
    assert sampler.connector.client_id != parent_client_id
    before = sampler.cache.last_updated
    wait_until(lambda: sampler.cache.last_updated != before, timeout=10)
    assert any(t.is_alive() and 'rule' in t.name.lower() for t in threading.enumerate())


def _reap(pid):
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _broken_wrapper(wrapped, instance, args, kwargs):
    raise RuntimeError('deliberately broken instrumentation')


def _late_context(recorder):
    recorder.begin_segment('late-parent')
    recorder.begin_subsegment('gone')
    ctx = contextvars.copy_context()
    recorder.end_subsegment()
    recorder.end_segment()
    return ctx


def _late_work(recorder):
    recorder.begin_subsegment('late-child')
    recorder.end_subsegment()


def test_prefork_workers_trace_while_parent_threads_held_every_lock(udp_sink, sampling_server):
    children_left = []
    recorder = AsyncAWSXRayRecorder()
    sampler = DefaultSampler(rule_interval=0.2, target_interval=0.2)
    recorder.configure(sampling=True, sampler=sampler, context=Context(), service='prefork',
                       daemon_address='tcp:%s udp:%s' % (sampling_server.address, udp_sink.address),
                       streaming_threshold=2)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(('127.0.0.1', 0))
    listener.listen(WORKERS)
    try:
        # Warm up in the parent: socket open, pollers running, rules cached.
        with recorder.in_segment('parent-warmup'):
            pass
        wait_until(lambda: sampler.cache.last_updated is not None)
        assert recorder.emitter.flush(10)  # a background sender opens the socket on its thread
        parent_socket = recorder.emitter._socket
        assert parent_socket is not None
        parent_client_id = sampler.connector.client_id

        locks = sdk_locks(recorder, sampler) + [context_module._detached_lock, _patching._logged_lock,
                                                 ids_module._lock]
        assert len(locks) >= 10, locks
        holding, release = threading.Event(), threading.Event()

        def hold_all():
            for lock in locks:
                lock.acquire()
            holding.set()
            release.wait(30)
            for lock in reversed(locks):
                lock.release()

        holder = threading.Thread(target=hold_all, name='lock-holder', daemon=True)
        holder.start()
        assert holding.wait(10)
        children = children_left = []
        for _ in range(WORKERS):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                # A worker stuck on a lock held at fork time must not outlive the test.
                faulthandler.dump_traceback_later(15, exit=True)  # shows where it is stuck
                signal.alarm(40)
                code = 1
                try:
                    _child_serve(recorder, sampler, listener, parent_client_id)
                    flush = getattr(recorder.emitter, 'flush', None)
                    if callable(flush):
                        flush(10)  # os._exit skips exit hooks: send what may still be queued
                    assert recorder.emitter._socket is not parent_socket
                    assert recorder.emitter.dropped == 0
                    code = 0
                except BaseException:
                    traceback.print_exc()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
            children.append(pid)
        release.set()
        holder.join(10)

        answers = []
        for n in range(WORKERS):
            with socket.create_connection(listener.getsockname(), timeout=30) as client:
                client.sendall(b'%d\n' % (n + 10))
                answers.append(int(client.makefile('rb').readline()))
        assert sorted(answers) == [2 * (n + 10) for n in range(WORKERS)]

        statuses = {}
        for pid in children:
            def finished(pid=pid):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    statuses[pid] = status
                return done
            wait_until(finished, timeout=45)
        assert all(os.WIFEXITED(s) and os.WEXITSTATUS(s) == 0 for s in statuses.values()), statuses
        children_left = []

        # The parent keeps working after the fork, with its own socket.
        with recorder.in_segment('parent-after-fork'):
            pass
        assert recorder.emitter.flush(10)
        assert recorder.emitter._socket is parent_socket
    finally:
        for pid in children_left:
            _reap(pid)
        listener.close()
        sampler.stop()

    docs = udp_sink.settle()
    by_name = {}
    for doc in docs:
        by_name.setdefault(doc['name'], []).append(doc)
    child_segments = by_name.get('prefork-child', [])
    assert sorted(d['annotations']['pid'] for d in child_segments) == sorted(children)
    for doc in child_segments:
        assert doc['aws']['xray']['sampling_rule_name'] == 'Default'
    assert len(by_name.get('late-child', [])) == WORKERS
    assert len(by_name.get('parent-after-fork', [])) == 1
    streamed = [d for d in docs if d['name'].startswith('step-')]
    embedded = [s for d in child_segments for s in d.get('subsegments', ()) if s['name'].startswith('step-')]
    assert len(streamed) + len(embedded) == 4 * WORKERS
    client_ids = {d['body']['SamplingStatisticsDocuments'][0]['ClientID'] for d in sampling_server.requests
                  if d['path'] == '/SamplingTargets' and d['body'].get('SamplingStatisticsDocuments')}
    assert len(client_ids) >= 1
