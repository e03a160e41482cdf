import json
import logging
import os
import socket
import subprocess
import sys
import threading

import pytest

from aws_like_sdk.core.emitters import multisend, posix_aio
from aws_like_sdk.core.emitters.encoding import MAX_DATAGRAM_BYTES, TRUNCATED_KEY, encode_document, to_datagrams
from aws_like_sdk.core.emitters.udp_emitter import POSIX_AIO_ENV, UDPEmitter
from aws_like_sdk.core.models.segment import Segment
from tests.support.udp_sink import assemble, walk


@pytest.fixture(params=['posix_aio', 'sendmmsg'])
def transport(request, monkeypatch):
    """Run a test with full batches handed to glibc's AIO threads, and again with the sender thread's
    sendmmsg alone (the environment variable reaches child processes too)."""
    if request.param == 'posix_aio':
        monkeypatch.setenv(POSIX_AIO_ENV, 'true')  # also where the machine has a single CPU
        if not posix_aio.available():
            pytest.skip('glibc POSIX AIO is not available here')
    else:
        monkeypatch.setenv(POSIX_AIO_ENV, 'false')
    return request.param


def _closed_segment(name: str) -> Segment:
    segment = Segment(name)
    segment.close()
    return segment


def test_large_segment_below_streaming_threshold_is_split(recorder, udp_sink):
    recorder.configure(streaming_threshold=10000)
    with recorder.in_segment('bulky') as segment:
        for i in range(40):
            with recorder.in_subsegment('part%d' % i):
                recorder.put_metadata('blob', 'x' * 5000)
                with recorder.in_subsegment('leaf%d' % i):
                    pass
    docs = udp_sink.settle(quiet=0.2)
    assert len(docs) > 1
    assert all(len(d) <= MAX_DATAGRAM_BYTES for d in udp_sink.datagrams)
    (tree,) = assemble(docs).values()
    assert tree['id'] == segment.id
    entities = list(walk(tree))
    assert len(entities) == 81
    for entity, parent in entities[1:]:
        assert entity['parent_id'] == parent['id'] and entity['trace_id'] == segment.trace_id


def test_single_oversized_entity_is_shrunk_with_marker(recorder, udp_sink, caplog):
    caplog.set_level(logging.WARNING)
    with recorder.in_segment('huge') as segment:
        segment.put_annotation('kept', 'yes')
        recorder.put_metadata('blob', 'y' * 200000)
    (doc,) = udp_sink.wait_for(1)
    assert len(udp_sink.datagrams[0]) <= MAX_DATAGRAM_BYTES
    assert TRUNCATED_KEY in doc['metadata']['default']
    assert doc['id'] == segment.id and doc['end_time']
    assert 'over the' in caplog.text


def test_to_datagrams_pieces_each_fit():
    doc = {'id': 'a' * 16, 'name': 'x', 'trace_id': '1-00000001-' + 'b' * 24, 'start_time': 1, 'end_time': 2,
           'subsegments': [{'id': '%016x' % i, 'name': 's', 'start_time': 1, 'end_time': 2,
                            'metadata': {'default': {'v': 'z' * 3000}}} for i in range(100)]}
    pieces = to_datagrams(doc)
    assert len(pieces) > 1 and all(len(p) <= MAX_DATAGRAM_BYTES for p in pieces)
    bodies = [json.loads(p.partition(b'\n')[2]) for p in pieces]
    children = [b for b in bodies if b.get('type') == 'subsegment']
    assert len(children) == 100 and all(c['parent_id'] == 'a' * 16 for c in children)


def test_to_datagrams_never_changes_the_document_it_splits_or_shrinks():
    # UDPEmitter hands it a deferred request's own document (no copy), which a late reader still reads.
    doc = {'id': 'a' * 16, 'name': 'n' * 300, 'trace_id': '1-00000001-' + 'b' * 24, 'start_time': 1, 'end_time': 2,
           'metadata': {'default': {'blob': 'y' * 70000}}, 'http': {'request': {'url': 'http://x/'}},
           'subsegments': [{'id': '%016x' % i, 'name': 's', 'start_time': 1, 'end_time': 2,
                            'metadata': {'default': {'v': 'z' * 3000}}} for i in range(30)]}
    before = json.dumps(doc, sort_keys=True)
    pieces = to_datagrams(doc)
    assert len(pieces) > 1 and all(len(p) <= MAX_DATAGRAM_BYTES for p in pieces)
    assert TRUNCATED_KEY in json.loads(pieces[-1].partition(b'\n')[2])['metadata']['default']
    assert json.dumps(doc, sort_keys=True) == before


def test_encode_document_survives_cycles_nan_and_surrogates():
    cyclic = {}
    cyclic['me'] = cyclic
    encoded = encode_document({'aws': cyclic, 'f': float('nan'), 's': '\ud800', 'o': object()})
    parsed = json.loads(encoded)
    assert parsed['f'] is None


def test_unreachable_daemon_logs_once_and_never_raises(caplog):
    caplog.set_level(logging.DEBUG, logger='aws_like_sdk')
    emitter = UDPEmitter('no-such-host.invalid:2000')
    segment = _closed_segment('svc')
    for _ in range(5):
        emitter.send_entity(segment)
    assert emitter.flush()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and 'Failed to send entity' in errors[0].getMessage()
    assert emitter.dropped == 5


def test_closed_port_does_not_affect_application():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
    probe.close()
    emitter = UDPEmitter('127.0.0.1:%d' % port)
    segment = _closed_segment('svc')
    for _ in range(3):
        emitter.send_entity(segment)
    assert emitter.flush()
    assert emitter.sent + emitter.dropped == 3


def test_message_too_long_is_logged_not_raised(udp_sink, caplog):
    caplog.set_level(logging.ERROR)
    emitter = UDPEmitter(udp_sink.address)
    emitter._send_data(b'x' * 70000)
    emitter._send_data(b'x' * 70000)
    assert emitter.dropped == 2
    assert len([r for r in caplog.records if 'Failed to send entity' in r.getMessage()]) == 1


def test_invalid_env_address_never_fails_at_construction(monkeypatch, caplog):
    monkeypatch.setenv('AWS_XRAY_DAEMON_ADDRESS', 'garbage')
    emitter = UDPEmitter()
    assert (emitter.ip, emitter.port) == ('127.0.0.1', 2000)
    assert 'Invalid daemon address' in caplog.text


def test_socket_recreated_after_fork(udp_sink):
    emitter = UDPEmitter(udp_sink.address)
    segment = _closed_segment('parent')
    emitter.send_entity(segment)
    assert emitter.flush()
    parent_socket = emitter._socket
    pid = os.fork()
    if pid == 0:  # child: must not reuse the parent's socket object
        try:
            child = _closed_segment('child')
            emitter.send_entity(child)
            ok = emitter.flush() and emitter._socket is not parent_socket
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    names = sorted(d['name'] for d in udp_sink.wait_for(2))
    assert names == ['child', 'parent']


def test_background_sender_is_lazy_named_daemon_and_flushes(udp_sink):
    emitter = UDPEmitter(udp_sink.address, background=True)
    assert emitter._thread is None
    segment = _closed_segment('queued')
    for _ in range(50):
        emitter.send_entity(segment)
    assert emitter._thread.daemon and emitter._thread.name == 'aws_like_sdk-udp-emitter'
    assert emitter.flush(timeout=5)
    assert emitter.sent == 50 and len(udp_sink.wait_for(50)) == 50


def test_full_queue_makes_the_caller_send_instead_of_growing_or_dropping(udp_sink):
    emitter = UDPEmitter(udp_sink.address, background=True, max_queue=0)
    segment = _closed_segment('overflow')
    emitter.send_entity(segment)
    emitter.send_entity(segment)
    assert emitter.sent == 2 and emitter.dropped == 0 and not emitter._queue
    assert len(udp_sink.wait_for(2)) == 2


def test_inline_in_lambda(monkeypatch, udp_sink):
    monkeypatch.setenv('LAMBDA_TASK_ROOT', '/var/task')
    emitter = UDPEmitter(udp_sink.address)
    segment = _closed_segment('sync')
    emitter.send_entity(segment)
    assert emitter._thread is None and emitter.sent == 1


@pytest.mark.parametrize('value, expected', [('false', False), ('0', False), ('off', False), ('true', True)])
def test_environment_switches_background_sending(monkeypatch, udp_sink, value, expected):
    monkeypatch.setenv('AWS_LIKE_SDK_BACKGROUND_SEND', value)
    emitter = UDPEmitter(udp_sink.address)
    segment = _closed_segment('switch')
    emitter.send_entity(segment)
    assert emitter.background is expected and (emitter._thread is not None) is expected
    assert emitter.flush() and emitter.sent == 1 and udp_sink.wait_for(1)[0]['name'] == 'switch'


@pytest.mark.skipif(not multisend.available(), reason='sendmmsg is Linux-only')
def test_background_is_the_default_where_batches_can_be_sent(monkeypatch):
    monkeypatch.delenv('AWS_LIKE_SDK_BACKGROUND_SEND', raising=False)
    monkeypatch.delenv('LAMBDA_TASK_ROOT', raising=False)
    monkeypatch.delenv('AWS_LAMBDA_FUNCTION_NAME', raising=False)
    assert UDPEmitter('127.0.0.1:2000').background is True


@pytest.mark.skipif(not multisend.available(), reason='sendmmsg is Linux-only')
def test_batch_sender_keeps_order_and_skips_only_the_refused_datagram():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(('127.0.0.1', 0))
    receiver.settimeout(2)
    sender_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sender = multisend.batch_sender_for(sender_socket, receiver.getsockname())
        payloads = [b'datagram-%d' % i for i in range(10)]
        payloads[4] = b'x' * 70000  # over the UDP limit: EMSGSIZE for this one only
        sent, failures = sender.send(payloads)
        assert sent == 9 and [index for index, _ in failures] == [4]
        assert failures[0][1] == 90  # EMSGSIZE
        received = [receiver.recv(70000) for _ in range(9)]
        assert received == payloads[:4] + payloads[5:]
    finally:
        receiver.close()
        sender_socket.close()


def test_background_sender_without_sendmmsg_falls_back_to_sendto(monkeypatch, udp_sink):
    monkeypatch.setattr(multisend, 'batch_sender_for', lambda sock, target: None)
    emitter = UDPEmitter(udp_sink.address, background=True)
    for i in range(30):
        segment = _closed_segment('fallback%d' % i)
        emitter.send_entity(segment)
    assert emitter.flush(timeout=5) and emitter.sent == 30
    assert sorted(d['name'] for d in udp_sink.wait_for(30)) == sorted('fallback%d' % i for i in range(30))


def test_many_threads_sending_in_background_lose_nothing(udp_sink, transport):
    emitter = UDPEmitter(udp_sink.address, background=True)

    def produce(prefix):
        for i in range(300):
            segment = Segment('%s-%d' % (prefix, i))
            segment.close()
            emitter.send_entity(segment)

    threads = [threading.Thread(target=produce, args=('t%d' % n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert emitter.flush(timeout=10)
    assert emitter.sent == 1200 and emitter.dropped == 0
    names = {d['name'] for d in udp_sink.wait_for(1200, timeout=10)}
    assert len(names) == 1200


def test_pending_documents_are_sent_at_interpreter_exit(udp_sink, transport):
    code = (
        "from aws_like_sdk.core.emitters.udp_emitter import UDPEmitter\n"
        "from aws_like_sdk.core.models.segment import Segment\n"
        "emitter = UDPEmitter(%r, background=True)\n"
        "for i in range(200):\n"
        "    s = Segment('exit%%d' %% i); s.close(); emitter.send_entity(s)\n" % udp_sink.address)
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == '', result.stderr
    assert len(udp_sink.wait_for(200)) == 200


_CHILD_PRELUDE = """
import atexit, multiprocessing, sys
from aws_like_sdk.core.emitters.udp_emitter import POSIX_AIO_ENV, UDPEmitter
from aws_like_sdk.core.models.segment import Segment
emitter = UDPEmitter(%r, background=True)
def send(name):
    s = Segment(name); s.close(); emitter.send_entity(s)
"""


def _run_child(udp_sink, body: str, expected_stderr: str = '') -> None:
    """Run ``body`` in a fresh interpreter with an emitter sending to ``udp_sink`` and ``send(name)``."""
    code = _CHILD_PRELUDE % udp_sink.address + body
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == expected_stderr, result.stderr


def test_what_an_exit_hook_sends_after_the_exit_flush_still_arrives(udp_sink):
    # atexit runs hooks last-registered first: one registered before the first send runs after the flush.
    _run_child(udp_sink, "atexit.register(send, 'from-exit-hook')\nsend('main')\n")
    assert sorted(doc['name'] for doc in udp_sink.wait_for(2)) == ['from-exit-hook', 'main']


def test_a_first_send_from_an_exit_hook_is_sent_inline_and_never_raises(udp_sink):
    # No sender thread can run (on 3.12+ none can even start) once the interpreter is exiting.
    body = """
def at_exit():
    send('only-at-exit')
    print('returned', file=sys.stderr)
atexit.register(at_exit)
"""
    _run_child(udp_sink, body, expected_stderr='returned\n')
    assert [doc['name'] for doc in udp_sink.wait_for(1)] == ['only-at-exit']


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='needs fork')
def test_a_multiprocessing_child_sends_what_it_queued_before_it_exits(udp_sink, transport):
    # multiprocessing ends a child with os._exit(): atexit hooks never run there, threading's do.
    body = """
def work(number):
    for i in range(5):
        send('child%d-%d' % (number, i))
if __name__ == '__main__':
    send('parent')
    assert emitter.flush(5)
    children = [multiprocessing.get_context('fork').Process(target=work, args=(n,)) for n in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(30)
        assert child.exitcode == 0
"""
    _run_child(udp_sink, body)
    names = sorted(doc['name'] for doc in udp_sink.wait_for(16))
    assert names == sorted(['parent'] + ['child%d-%d' % (n, i) for n in range(3) for i in range(5)])


@pytest.mark.skipif(not multisend.available(), reason='needs sendmmsg')
def test_close_waits_for_the_batch_being_sent(monkeypatch, udp_sink):
    # The batch call takes the socket's descriptor number; closed under it, that number could belong to
    # a file the application opens next, and the batch would be written there.
    real_sendmmsg = multisend._sendmmsg
    entered, release = threading.Event(), threading.Event()

    def held_sendmmsg(*args):
        entered.set()
        release.wait(10)
        return real_sendmmsg(*args)

    monkeypatch.setattr(multisend, '_sendmmsg', held_sendmmsg)
    emitter = UDPEmitter(udp_sink.address, background=True)
    segment = _closed_segment('in-flight')
    batch = to_datagrams(segment.to_dict()) * 3
    sending = threading.Thread(target=emitter._send_batch, args=(batch,))
    sending.start()
    assert entered.wait(10)
    closing = threading.Thread(target=emitter.close)
    closing.start()
    closing.join(0.2)
    assert closing.is_alive()  # close() waits while the batch is in the kernel's hands
    release.set()
    sending.join(10)
    closing.join(10)
    assert not closing.is_alive() and emitter._socket is None
    assert emitter.sent == 3 and [doc['name'] for doc in udp_sink.wait_for(3)] == ['in-flight'] * 3


def test_a_daemon_host_that_does_not_resolve_is_looked_up_again_only_after_a_while(monkeypatch, caplog):
    from aws_like_sdk.core.emitters import udp_emitter
    lookups = []

    def failing_getaddrinfo(*args, **kwargs):  # a resolver that fails (and may hang) cannot be had here
        lookups.append(args[0])
        raise socket.gaierror(socket.EAI_AGAIN, 'Temporary failure in name resolution')

    monkeypatch.setattr(udp_emitter.socket, 'getaddrinfo', failing_getaddrinfo)
    caplog.set_level(logging.DEBUG, logger='aws_like_sdk.core.emitters.udp_emitter')
    emitter = UDPEmitter('xray-daemon.example:2000', background=False)
    segment = _closed_segment('unresolved')
    for _ in range(20):
        emitter.send_entity(segment)
    assert lookups == ['xray-daemon.example'] and emitter.dropped == 20 and emitter.sent == 0
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1 and 'name resolution' in errors[0].getMessage()
    monkeypatch.setattr(udp_emitter, '_RESOLVE_RETRY_SECONDS', 0.0)
    emitter._resolve_retry_at = 0.0
    emitter.send_entity(segment)
    assert len(lookups) == 2  # tried again once the wait is over
    # A new address is looked up at once.
    emitter.set_daemon_address('other-daemon.example:2000')
    emitter.send_entity(segment)
    assert lookups[-1] == 'other-daemon.example'
    emitter.close()


def test_flush_sends_at_once_instead_of_waiting_for_the_batch_linger(monkeypatch, udp_sink):
    from aws_like_sdk.core.emitters import udp_emitter
    # A linger far longer than the flush timeout: flush can only succeed if the sender skips it.
    monkeypatch.setattr(udp_emitter, '_SENDER_LINGER', 60.0)
    emitter = UDPEmitter(udp_sink.address, background=True)
    segment = _closed_segment('first')
    emitter.send_entity(segment)
    assert emitter.flush(timeout=5)
    wait_until = threading.Event()
    wait_until.wait(0.05)  # let the sender go idle, so the next datagram has to wake it up
    emitter.send_entity(segment)
    assert emitter.flush(timeout=5)
    assert emitter.sent == 2 and len(udp_sink.wait_for(2)) == 2


def test_values_the_fast_encoder_refuses_are_written_as_text():
    class Region:
        def __str__(self):
            return 'eu-west-1'

    segment = Segment('odd-values')
    segment.set_aws({'region': Region(), 'ecs': {'container': 'c1'}})
    segment.close()
    (payload,) = to_datagrams(segment.to_dict())
    doc = json.loads(payload.split(b'\n', 1)[1])
    assert doc['aws'] == {'region': 'eu-west-1', 'ecs': {'container': 'c1'}}
    assert json.loads(segment.serialize())['aws']['region'] == 'eu-west-1'


def test_a_full_batch_wakes_the_lingering_sender_and_flush_sends_the_rest(monkeypatch, udp_sink, transport):
    from aws_like_sdk.core.emitters import multisend, udp_emitter
    # Lingers far longer than the test: datagrams can only arrive early if a full batch wakes the sender.
    monkeypatch.setattr(udp_emitter, '_SENDER_LINGER', 60.0)
    monkeypatch.setattr(udp_emitter, '_SENDER_LINGER_BUSY', 60.0)
    emitter = UDPEmitter(udp_sink.address, background=True)
    segment = _closed_segment('batched')
    (payload,) = to_datagrams(segment.to_dict())
    full = min(multisend.MAX_BATCH, multisend.MAX_BATCH_FOOTPRINT // multisend.footprints([payload])[0])
    total = 3 * full + 10
    for _ in range(total):
        emitter.send_entity(segment)
    # At least two full batches have left by now, each woken by the producer.
    assert len(udp_sink.wait_for(2 * full, timeout=10)) >= 2 * full
    assert emitter._full_batch == full
    # What is left is less than a batch: it waits for the linger, or for flush().
    assert emitter.flush(timeout=5)
    assert emitter.sent == total and emitter.dropped == 0
    assert len(udp_sink.wait_for(total)) == total


def test_the_full_batch_follows_the_size_of_the_documents(udp_sink, transport):
    from aws_like_sdk.core.emitters import multisend, posix_aio
    emitter = UDPEmitter(udp_sink.address, background=True)
    segment = Segment('large')
    segment.put_metadata('blob', 'x' * 8000)
    segment.close()
    for _ in range(40):
        emitter.send_entity(segment)
    assert emitter.flush(timeout=5)
    # About 8 KB each: the receive-buffer bound, not the count, makes a batch full.
    (payload,) = to_datagrams(segment.to_dict())
    assert emitter._full_batch == multisend.MAX_BATCH_FOOTPRINT // multisend.footprints([payload])[0]
    assert emitter._full_batch < multisend.MAX_BATCH
    assert len(udp_sink.wait_for(40)) == 40


SO_MEMINFO = 55  # Linux: the socket's memory counters; the first is the receive queue's charge


def _receive_charge_of(size: int) -> int:
    """What the kernel charges a receiver for one queued datagram of ``size`` bytes, read back."""
    import struct
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind(('127.0.0.1', 0))
        sender.sendto(b'x' * size, receiver.getsockname())
        return struct.unpack('9I', receiver.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 36))[0]
    finally:
        receiver.close()
        sender.close()


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='SO_MEMINFO is Linux only')
@pytest.mark.parametrize('size', [1, 128, 129, 541, 640, 641, 1600, 3700, 7800, 7900, 16000, 16384, 30000, 65507])
def test_the_footprint_estimate_is_never_below_what_the_kernel_charges(size):
    (estimate,) = multisend.footprints([b'x' * size])
    assert estimate >= _receive_charge_of(size)
    assert estimate <= 2 * _receive_charge_of(size)  # and not so far above that batches shrink for nothing


@pytest.mark.parametrize('batch_transport', ['sendmmsg', 'posix_aio'])
def test_one_batch_of_typical_segments_fits_a_receiver_that_is_not_reading(batch_transport):
    if not (multisend if batch_transport == 'sendmmsg' else posix_aio).available():
        pytest.skip('%s is not available here' % batch_transport)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(('127.0.0.1', 0))
    receiver.setblocking(False)
    if receiver.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < multisend.MAX_BATCH_FOOTPRINT:
        receiver.close()
        pytest.skip('this kernel gives sockets less than the default receive buffer')
    emitter = UDPEmitter('127.0.0.1:%d' % receiver.getsockname()[1], background=True)
    segment = Segment('typical')
    segment.put_http_meta('url', 'http://example.com/items/42')
    segment.put_metadata('note', 'y' * 300)
    segment.close()
    (payload,) = to_datagrams(segment.to_dict())
    assert 400 < len(payload) < 640  # a typical request segment
    try:
        # Fill the queue as a busy server would, then send one batch the way the emitter does.
        emitter._queue.extend([payload] * multisend.MAX_BATCH)
        batch, _ = emitter._take_batch()
        if batch_transport == 'posix_aio':
            aio = posix_aio.AioBatchSender(receiver.getsockname(), 0.5)
            assert aio.submit(batch)
            written, errors = aio.wait(5)
            aio.close(1)
            emitter.sent += written
            assert errors == []
        else:
            emitter._send_batch(batch)
        received = 0
        while True:
            try:
                receiver.recv(65536)
            except BlockingIOError:
                break
            received += 1
        # The whole burst was queued by the kernel: nothing waited on a reader to make room.
        assert received == len(batch) == emitter.sent > 100
        assert len(emitter._queue) == multisend.MAX_BATCH - len(batch)  # the rest waits for the next batch
    finally:
        emitter._queue.clear()
        emitter.close()
        receiver.close()


def test_metadata_with_non_string_keys_is_encoded_by_the_fast_path():
    segment = Segment('keys')
    segment.put_metadata('by_id', {1: 'one', None: 'none', 2.5: 'x'})
    segment.set_aws({'ecs': {1: 'container-one'}})  # blocks set directly are not converted first
    segment.close()
    (payload,) = to_datagrams(segment.to_dict())
    doc = json.loads(payload.split(b'\n', 1)[1])
    assert doc['metadata']['default']['by_id'] == {'1': 'one', 'None': 'none', '2.5': 'x'}
    assert doc['aws'] == {'ecs': {'1': 'container-one'}}


def test_background_batches_stay_within_the_receive_buffer_bound_and_keep_order(monkeypatch, udp_sink, transport):
    footprints = []
    # Either way a batch leaves: handed to the AIO threads, or sent by the sender thread.
    owner, method = (posix_aio.AioBatchSender, 'submit') if transport == 'posix_aio' else (multisend.BatchSender, 'send')
    real_send = getattr(owner, method)

    def recording_send(self, payloads):
        footprints.append(sum(multisend.footprints(payloads)))
        return real_send(self, payloads)

    monkeypatch.setattr(owner, method, recording_send)
    emitter = UDPEmitter(udp_sink.address, background=True)
    for number in range(12):
        segment = Segment('big-%02d' % number)
        segment.put_metadata('blob', 'x' * 30000)
        segment.close()
        emitter.send_entity(segment)
    assert emitter.flush(timeout=5)
    docs = udp_sink.wait_for(12)
    assert [doc['name'] for doc in docs] == ['big-%02d' % number for number in range(12)]
    assert footprints and all(footprint <= multisend.MAX_BATCH_FOOTPRINT for footprint in footprints)
    assert sum(footprints) > multisend.MAX_BATCH_FOOTPRINT  # so the bound really split the queue


def test_datagrams_are_the_same_document_with_and_without_orjson(monkeypatch):
    orjson = pytest.importorskip('orjson')  # in the test extra; without it both sides would be the stdlib
    from aws_like_sdk.core.emitters import encoding
    assert encoding._encode_fast is orjson.dumps
    segment = Segment('either-encoder')
    segment.put_metadata('values', {'n': 1.5, 'text': 'é', 'none': None})
    segment.close()
    doc = segment.to_dict()
    (fast,) = to_datagrams(doc)
    monkeypatch.setattr(encoding, '_orjson_dumps', None)
    monkeypatch.setattr(encoding, '_encode_fast', encoding._encode_stdlib)
    (stdlib,) = to_datagrams(doc)
    assert fast.startswith(encoding.HEADER_BYTES) and stdlib.startswith(encoding.HEADER_BYTES)
    assert json.loads(fast.split(b'\n', 1)[1]) == json.loads(stdlib.split(b'\n', 1)[1])


_RECEIVER_IN_NAMESPACE = '''
import socket, sys
receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
receiver.bind((sys.argv[1], int(sys.argv[2])))
print('ready', flush=True)
receiver.settimeout(3.0)
count = 0
try:
    while True:
        receiver.recv(70000)
        count += 1
except socket.timeout:
    pass
print(count, flush=True)
'''


@pytest.fixture
def slow_link():
    """A daemon address across a real 200 Mbit/s link: a veth pair into a network namespace, shaped by tc.

    Loopback never fills a UDP socket's send buffer; a real interface with a queue does. Needs root
    (CAP_NET_ADMIN) and iproute2; skipped without them."""
    import random
    import shutil
    if not sys.platform.startswith('linux') or os.geteuid() != 0 or not shutil.which('ip') or not shutil.which('tc'):
        pytest.skip('needs root and iproute2 to build a shaped link')
    tag = '%d%d' % (os.getpid() % 10000, random.randrange(100))
    namespace, near, far = 'alsdk%s' % tag, 'alsa%s' % tag, 'alsb%s' % tag
    subnet = '10.213.%d' % random.randrange(1, 250)
    setup = [['ip', 'netns', 'add', namespace],
             ['ip', 'link', 'add', near, 'type', 'veth', 'peer', 'name', far],
             ['ip', 'link', 'set', far, 'netns', namespace],
             ['ip', 'addr', 'add', subnet + '.1/24', 'dev', near],
             ['ip', 'link', 'set', near, 'up'],
             ['ip', 'netns', 'exec', namespace, 'ip', 'addr', 'add', subnet + '.2/24', 'dev', far],
             ['ip', 'netns', 'exec', namespace, 'ip', 'link', 'set', far, 'up'],
             ['tc', 'qdisc', 'add', 'dev', near, 'root', 'tbf', 'rate', '200mbit', 'burst', '64kb', 'latency', '200ms']]
    try:
        for command in setup:
            done = subprocess.run(command, capture_output=True, text=True, timeout=10)
            if done.returncode != 0:
                pytest.skip('cannot build a shaped link here: %s' % done.stderr.strip())
        yield namespace, subnet + '.2'
    finally:
        subprocess.run(['ip', 'link', 'del', near], capture_output=True, timeout=10)
        subprocess.run(['ip', 'netns', 'del', namespace], capture_output=True, timeout=10)


@pytest.mark.skipif(not multisend.available(), reason='needs sendmmsg')
def test_batches_wait_for_room_on_a_link_slower_than_the_burst(slow_link, transport):
    namespace, address = slow_link
    receiver = subprocess.Popen(['ip', 'netns', 'exec', namespace, sys.executable, '-c', _RECEIVER_IN_NAMESPACE,
                                 address, '2000'], stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout.readline().strip() == 'ready'
        emitter = UDPEmitter('%s:2000' % address, background=True)
        segment = Segment('across-the-link')
        segment.put_metadata('blob', 'x' * 20000)
        segment.close()
        for _ in range(400):  # 8 MB: a third of a second at 200 Mbit/s, queued far faster than that
            emitter.send_entity(segment)
        assert emitter.flush(timeout=30)
        received = int(receiver.communicate(timeout=30)[0].strip())
    finally:
        if receiver.poll() is None:
            receiver.kill()
    assert emitter.dropped == 0 and emitter.sent == 400
    assert received == 400


def test_an_idle_sender_ends_and_lets_its_emitter_go_and_the_next_send_starts_another(monkeypatch, udp_sink):
    import gc
    import weakref
    from aws_like_sdk.core.emitters import udp_emitter
    monkeypatch.setattr(udp_emitter, '_SENDER_IDLE_WAIT', 0.01)
    monkeypatch.setattr(udp_emitter, '_SENDER_IDLE_WAITS_BEFORE_EXIT', 3)
    emitter = UDPEmitter(udp_sink.address, background=True)
    segment = _closed_segment('before')
    emitter.send_entity(segment)
    first = emitter._thread
    assert emitter.flush(timeout=5)
    first.join(5)
    assert not first.is_alive() and emitter._thread is None
    segment = _closed_segment('after')
    emitter.send_entity(segment)
    assert emitter._thread is not None and emitter._thread is not first
    assert emitter.flush(timeout=5)
    assert [doc['name'] for doc in udp_sink.wait_for(2)] == ['before', 'after']
    # Dropped by the application, the emitter is freed once its sender has gone idle.
    second, gone = emitter._thread, weakref.ref(emitter)
    del emitter
    second.join(5)
    gc.collect()
    assert not second.is_alive() and gone() is None


def test_sends_racing_a_sender_that_is_ending_all_arrive(monkeypatch, udp_sink, transport):
    import random
    from aws_like_sdk.core.emitters import udp_emitter
    # The sender ends after every idle wait, so producers keep meeting it on its way out.
    monkeypatch.setattr(udp_emitter, '_SENDER_IDLE_WAIT', 0.001)
    monkeypatch.setattr(udp_emitter, '_SENDER_IDLE_WAITS_BEFORE_EXIT', 1)
    monkeypatch.setattr(udp_emitter, '_SENDER_LINGER', 0.0005)
    emitter = UDPEmitter(udp_sink.address, background=True)
    pause = random.Random(7)

    def produce(number):
        for index in range(60):
            segment = Segment('p%d-%d' % (number, index))
            segment.close()
            emitter.send_entity(segment)
            threading.Event().wait(pause.random() * 0.004)

    producers = [threading.Thread(target=produce, args=(number,)) for number in range(4)]
    for producer in producers:
        producer.start()
    for producer in producers:
        producer.join(30)
    # Nothing may be left behind in the queue by a sender that ended: it all arrives without a flush.
    assert len(udp_sink.wait_for(240, timeout=10)) == 240
    assert emitter.dropped == 0 and not emitter._queue
