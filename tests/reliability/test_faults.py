"""Faults around the SDK: the daemon away, a flapping sampling API, send errors, shutdown.

In every case the host application's results and exceptions must be exactly what they are without
tracing, and the SDK must recover on its own once the fault is gone.
"""
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

from aws_like_sdk.core.async_recorder import AsyncAWSXRayRecorder
from aws_like_sdk.core.context import Context
from aws_like_sdk.core.emitters.encoding import MAX_DATAGRAM_BYTES, TRUNCATED_KEY
from aws_like_sdk.core.emitters.udp_emitter import UDPEmitter
from aws_like_sdk.core.models.segment import Segment
from aws_like_sdk.core.sampling.connector import ServiceConnector
from aws_like_sdk.core.sampling.sampler import DefaultSampler
from tests.daemon.conftest import DaemonProcess
from tests.support.udp_sink import assemble, walk

from .conftest import LONG_TIMEOUT, ROOT, free_tcp_port, free_udp_port, scaled, wait_until
from .sampling_server import FAULTS, SamplingServer

pytestmark = pytest.mark.timeout(LONG_TIMEOUT)


class AppError(Exception):
    """The application's own exception; tracing must hand it back untouched."""


def app_call(recorder, n: int) -> int:
    """A traced unit of application work: returns a value, or raises for multiples of 7."""
    with recorder.in_segment('app') as segment:
        with recorder.in_subsegment('compute'):
            if n % 7 == 0:
                raise AppError(n)
            return n * 3 if segment is not None else -1


def run_app(recorder, numbers):
    """Run ``app_call`` and return what the application observed (values and exceptions)."""
    observed = []
    for n in numbers:
        try:
            observed.append(('ok', app_call(recorder, n)))
        except AppError as exc:
            observed.append(('raised', exc.args))
    return observed


def expected(numbers):
    return [('raised', (n,)) if n % 7 == 0 else ('ok', n * 3) for n in numbers]


# -- the daemon absent, then started ---------------------------------------------------------------

def test_daemon_absent_then_started_mid_run(tmp_path):
    udp_port, tcp_port = free_udp_port(), free_tcp_port()
    rules = tmp_path / 'rules.json'
    rules.write_text(json.dumps({'version': 2, 'default': {'fixed_target': 1, 'rate': 1.0}}))
    recorder = AsyncAWSXRayRecorder()
    sampler = DefaultSampler(rule_interval=0.2, target_interval=0.2)
    recorder.configure(sampling=True, sampler=sampler, context=Context(), service='resilient',
                       daemon_address='tcp:127.0.0.1:%d udp:127.0.0.1:%d' % (tcp_port, udp_port))
    daemon = None
    try:
        before = range(1, scaled(200, 5000))
        assert run_app(recorder, before) == expected(before)
        assert sampler.cache.last_updated is None  # nothing answered yet: local rules decided
        # Where the kernel reports the refusals (the connected socket of glibc's AIO threads) they are
        # counted as dropped; nothing is dropped once a daemon listens.
        assert recorder.emitter.flush(10)
        dropped_while_absent = recorder.emitter.dropped

        workdir = tmp_path / 'daemon'
        workdir.mkdir()
        daemon = DaemonProcess(str(workdir), ['--udp', '127.0.0.1:%d' % udp_port, '--tcp', '127.0.0.1:%d' % tcp_port,
                                              '--sampling-rules', str(rules)])
        # Centralized sampling resumes by itself once the daemon answers.
        wait_until(lambda: sampler.cache.last_updated is not None, timeout=20)
        after = range(1, scaled(100, 2000))
        segments = []
        for n in after:
            with recorder.in_segment('after') as segment:
                segments.append(segment)
        assert run_app(recorder, after) == expected(after)
        assert all(s.sampled for s in segments)
        for segment in segments[-5:]:
            trace = daemon.wait_trace(segment.trace_id, timeout=20)
            assert trace['summary']['documents'] >= 1
        stored_after = len(segments) + len(after)
        daemon.wait_stored(stored_after, timeout=30)
        assert recorder.emitter.flush(10)
        assert recorder.emitter.dropped == dropped_while_absent
    finally:
        sampler.stop()
        if daemon is not None:
            daemon.stop()


def test_daemon_survives_a_header_that_nests_too_deep(start_daemon_process):
    """One hostile datagram must not stop ingestion (it used to kill the UDP thread)."""
    daemon = start_daemon_process()
    daemon.send_raw(b'[' * 60000 + b'\n{}')
    daemon.send_raw(b'{"format":"json","version":1,"x":' + b'[' * 30000 + b'\n{}')
    recorder = AsyncAWSXRayRecorder()
    recorder.configure(sampling=False, context=Context(), service='after-bad-header',
                       daemon_address='%s:%d' % daemon.udp)
    with recorder.in_segment('after-bad-header') as segment:
        pass
    daemon.wait_trace(segment.trace_id, timeout=20)
    assert daemon.counter('rejected.invalid_header') == 2


@pytest.fixture
def start_daemon_process(tmp_path):
    started = []

    def start(*args):
        workdir = tmp_path / ('daemon-%d' % len(started))
        workdir.mkdir()
        process = DaemonProcess(str(workdir), list(args))
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


# -- a flapping sampling endpoint that answers garbage ----------------------------------------------

def test_sampling_endpoint_flapping_and_answering_garbage(udp_sink, caplog):
    caplog.set_level(logging.DEBUG, logger='aws_like_sdk')
    script = ['ok'] + [fault for fault in FAULTS for _ in (0,)] + ['ok']
    server = SamplingServer(script, slow_seconds=0.5)
    recorder = AsyncAWSXRayRecorder()
    connector = ServiceConnector('127.0.0.1', server.port, timeout=0.2)
    sampler = DefaultSampler(connector=connector, rule_interval=0.05, target_interval=0.05)
    recorder.configure(sampling=True, sampler=sampler, context=Context(), service='flapping',
                       daemon_address='tcp:%s udp:%s' % (server.address, udp_sink.address))
    stop = threading.Event()
    failures = []
    decisions = set()

    def app_thread(offset):
        n = offset
        while not stop.is_set():
            numbers = range(n, n + 20)
            try:
                if run_app(recorder, numbers) != expected(numbers):
                    failures.append('results changed')
                decisions.add(type(sampler.should_trace({'host': 'h', 'method': 'GET', 'path': '/'})))
            except Exception as exc:  # noqa: BLE001 - any escape is the failure we look for
                failures.append(repr(exc))
            n += 20

    threads = [threading.Thread(target=app_thread, args=(i * 1000000,), daemon=True) for i in range(4)]
    try:
        for thread in threads:
            thread.start()
        cycles = scaled(3, 20)
        wait_until(lambda: len(server.requests) >= cycles * len(script), timeout=60)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        sampler.stop()
        server.close()
    assert failures == []
    assert decisions <= {bool, str}
    seen = {r['action'] for r in server.requests}
    assert seen == set(script)
    # Garbage is an outage like any other: no poller crash with a traceback.
    crashes = [r for r in caplog.records if 'poller' in r.getMessage() and r.exc_info]
    assert crashes == [], [r.getMessage() + ' ' + str(r.exc_info[1]) for r in crashes]
    assert all(t.is_alive() is False for t in threads)


# -- send errors ------------------------------------------------------------------------------------

def test_oversized_segment_is_split_and_every_piece_arrives(udp_sink):
    recorder = AsyncAWSXRayRecorder()
    recorder.configure(sampling=False, context=Context(), service='big', daemon_address=udp_sink.address,
                       streaming_threshold=100000)  # keep everything in one document: the splitter must cope
    with recorder.in_segment('big') as segment:
        for i in range(200):
            with recorder.in_subsegment('part-%d' % i) as sub:
                sub.put_metadata('blob', 'x' * 2000)
        with recorder.in_subsegment('huge') as sub:
            sub.put_metadata('blob', 'y' * (1024 * 1024))
    # Everything handed over and written first: a partial last batch may otherwise wait up to 0.2 s
    # for the background sender, as long as the sink's quiet spell.
    assert recorder.emitter.flush(10)
    datagrams = wait_until(lambda: len(udp_sink.datagrams) >= recorder.emitter.sent and udp_sink.datagrams)
    udp_sink.settle()
    assert recorder.emitter.dropped == 0
    assert len(udp_sink.datagrams) == recorder.emitter.sent > 1
    assert max(len(d) for d in udp_sink.datagrams) <= MAX_DATAGRAM_BYTES
    tree = assemble(udp_sink.documents())[segment.id]
    names = {entity['name']: entity for entity, _ in walk(tree)}
    assert all('part-%d' % i in names for i in range(200))
    assert TRUNCATED_KEY in names['huge']['metadata']['default']
    assert datagrams


def test_message_too_long_and_refused_sends_are_counted_logged_once_and_never_raised(udp_sink, caplog):
    caplog.set_level(logging.DEBUG, logger='aws_like_sdk')
    emitter = UDPEmitter(udp_sink.address)
    # A real payload over the IPv4 UDP limit: the kernel answers EMSGSIZE.
    for _ in range(3):
        emitter._send_data(b'{"format":"json","version":1}\n' + b'x' * 70000)
    assert emitter.dropped == 3
    # A destination the kernel refuses (broadcast without SO_BROADCAST): EACCES.
    refused = UDPEmitter('255.255.255.255:2000')
    segment = Segment('refused')
    segment.close()
    for _ in range(3):
        refused.send_entity(segment)
    assert refused.flush()
    assert refused.dropped == 3 and refused.sent == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and 'Failed to send' in r.getMessage()]
    assert len(errors) == 2, [r.getMessage() for r in errors]  # once per cause, per emitter
    # After the fault, sending works again; an intermittent fault does not log per datagram.
    for _ in range(3):
        emitter.send_entity(segment)
        emitter._send_data(b'{"format":"json","version":1}\n' + b'x' * 70000)
    assert emitter.flush()
    assert emitter.sent == 3 and emitter.dropped == 6
    assert udp_sink.wait_for(3)[0]['name'] == 'refused'
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and 'Failed to send' in r.getMessage()]
    assert len(errors) == 2


def test_no_buffer_space_drops_are_counted_and_the_application_never_sees_them(udp_sink, caplog):
    caplog.set_level(logging.DEBUG, logger='aws_like_sdk')
    recorder = AsyncAWSXRayRecorder()
    recorder.configure(sampling=False, context=Context(), service='tight', daemon_address=udp_sink.address)
    with recorder.in_segment('open-socket'):
        pass
    assert recorder.emitter.flush()  # the background sender (when used) has opened the socket
    # The emitter's own, real socket with the smallest send buffer the kernel allows.
    recorder.emitter._socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
    per_thread = scaled(300, 3000)
    failures = []

    def burst(offset):
        try:
            numbers = range(offset, offset + per_thread)
            for n in numbers:
                with recorder.in_segment('tight') as segment:
                    segment.put_metadata('payload', 'z' * 50000)
            if run_app(recorder, range(offset, offset + 20)) != expected(range(offset, offset + 20)):
                failures.append('results changed')
        except Exception as exc:  # noqa: BLE001
            failures.append(repr(exc))

    raw_per_thread = scaled(3000, 20000)
    payload = b'{"format":"json","version":1}\n' + b'{"pad":"' + b'p' * 59000 + b'"}'

    def raw_burst():
        # The emitter's send path alone, so the threads really overlap inside sendto() and the
        # kernel runs out of send buffer (EAGAIN) on the tiny SO_SNDBUF.
        try:
            for _ in range(raw_per_thread):
                recorder.emitter._send_data(payload)
        except Exception as exc:  # noqa: BLE001
            failures.append(repr(exc))

    threads = [threading.Thread(target=burst, args=(i * 100000,)) for i in range(4)]
    threads += [threading.Thread(target=raw_burst) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    emitter = recorder.emitter
    assert emitter.flush(timeout=30)
    assert emitter.sent + emitter.dropped == 1 + 4 * (per_thread + 20) + 4 * raw_per_thread
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and 'Failed to send' in r.getMessage()]
    assert len(errors) <= emitter.dropped and len(errors) <= 2
    print('no-buffer-space: sent=%d dropped=%d error_lines=%d' % (emitter.sent, emitter.dropped, len(errors)))


# -- interpreter shutdown with open segments --------------------------------------------------------

SHUTDOWN_SCRIPT = textwrap.dedent('''
    import asyncio, sys, threading, time
    from aws_like_sdk.core import xray_recorder
    from aws_like_sdk.core.sampling.sampler import DefaultSampler
    from aws_like_sdk.ext import futures
    futures.patch()
    xray_recorder.configure(service='shutdown', sampler=DefaultSampler(rule_interval=0.05, target_interval=0.05),
                            daemon_address='tcp:127.0.0.1:%(tcp)d udp:127.0.0.1:%(udp)d')

    def busy():
        while True:  # a daemon thread still tracing when the interpreter goes away
            with xray_recorder.in_segment('busy'):
                with xray_recorder.in_subsegment('loop'):
                    time.sleep(0.001)

    for _ in range(3):
        threading.Thread(target=busy, daemon=True).start()

    async def pending():
        async with xray_recorder.in_subsegment_async('pending'):
            await asyncio.sleep(3600)

    async def main():
        xray_recorder.begin_segment('async-open')
        asyncio.ensure_future(pending())
        await asyncio.sleep(0.05)
        return 42

    print('result=%%d' %% asyncio.run(main()))
    xray_recorder.begin_segment('left-open')
    xray_recorder.begin_subsegment('also-open')
    time.sleep(0.3)
    %(ending)s
''')


@pytest.mark.parametrize('ending, code, app_error', [
    ('sys.exit(3)', 3, None),
    ('raise ValueError("application failure")', 1, 'ValueError: application failure'),
    ('pass', 0, None),
])
def test_interpreter_shutdown_with_open_segments_prints_no_traceback(ending, code, app_error):
    script = SHUTDOWN_SCRIPT % {'tcp': free_tcp_port(), 'udp': free_udp_port(), 'ending': ending}
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop('AWS_XRAY_DAEMON_ADDRESS', None)
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=60, env=env,
                            cwd=ROOT)
    assert result.returncode == code, result.stderr
    assert result.stdout == 'result=42\n'
    stderr = result.stderr
    if app_error:
        # Exactly the application's own traceback, nothing from the SDK.
        assert stderr.count('Traceback') == 1, stderr
        assert stderr.rstrip().endswith(app_error), stderr
        stderr = stderr.split('Traceback', 1)[0]
    assert 'Traceback' not in stderr, stderr
    assert 'Exception ignored' not in stderr, stderr
    assert 'Fatal Python error' not in stderr, stderr
