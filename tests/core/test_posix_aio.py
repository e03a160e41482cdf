"""Full batches handed to glibc's POSIX AIO threads: real sockets, real glibc, real fork()."""
import logging
import os
import platform
import socket
import subprocess
import sys
import time

import pytest

from aws_like_sdk.core.emitters import multisend, posix_aio
from aws_like_sdk.core.emitters.encoding import to_datagrams
from aws_like_sdk.core.emitters.udp_emitter import POSIX_AIO_ENV, UDPEmitter
from aws_like_sdk.core.models.segment import Segment
from tests.reliability.conftest import wait_until
from tests.support.udp_sink import UDPSink

GLIBC_64 = sys.platform.startswith('linux') and platform.libc_ver()[0] == 'glibc' and sys.maxsize > 2 ** 32

pytestmark = pytest.mark.skipif(not GLIBC_64, reason='POSIX AIO batches are used with 64-bit glibc only')


@pytest.fixture(autouse=True)
def aio_on(monkeypatch):
    # On, whatever the number of CPUs here (by default it needs two: see the policy tests at the end).
    monkeypatch.setenv(POSIX_AIO_ENV, 'true')


def _segment(name: str) -> Segment:
    segment = Segment(name)
    segment.close()
    return segment


def test_the_self_test_accepts_this_glibc():
    assert posix_aio.available()


def test_producers_hand_full_batches_over_themselves_and_order_holds(monkeypatch, udp_sink):
    from aws_like_sdk.core.emitters import udp_emitter
    # The sender waits far longer than the test, and so would a tail: only producers can send the
    # full batches.
    monkeypatch.setattr(udp_emitter, '_SENDER_LINGER_BUSY', 60.0)
    monkeypatch.setattr(udp_emitter, '_AIO_TIMER_MAX', 60.0)
    emitter = UDPEmitter(udp_sink.address, background=True)
    emitter.send_entity(_segment('first'))  # starts the sender, which makes the AIO sender
    wait_until(lambda: emitter._aio is not None)
    (payload,) = to_datagrams(_segment('n0000').to_dict())
    full = min(multisend.MAX_BATCH, multisend.MAX_BATCH_FOOTPRINT // multisend.footprints([payload])[0])
    total = 3 * full + 7
    for number in range(total):
        emitter.send_entity(_segment('n%04d' % number))
    # Full batches arrived without the sender thread; the rest waits for flush().
    assert len(udp_sink.wait_for(1 + 2 * full, timeout=10)) >= 1 + 2 * full
    assert emitter.flush(timeout=5)
    names = [doc['name'] for doc in udp_sink.wait_for(total + 1)]
    assert names == ['first'] + ['n%04d' % number for number in range(total)]
    assert emitter.sent == total + 1 and emitter.dropped == 0


def test_sent_counts_written_batches_without_a_flush(udp_sink):
    emitter = UDPEmitter(udp_sink.address, background=True)
    for number in range(600):
        emitter.send_entity(_segment('c%d' % number))
    udp_sink.wait_for(600)
    wait_until(lambda: emitter.sent == 600)


def test_a_batch_glibc_refuses_waits_and_is_sent_in_order(monkeypatch, udp_sink):
    refusals = []
    real_submit = posix_aio.AioBatchSender.submit

    def refusing_submit(self, payloads):
        if len(refusals) < 5:
            refusals.append(len(payloads))
            return False
        return real_submit(self, payloads)

    monkeypatch.setattr(posix_aio.AioBatchSender, 'submit', refusing_submit)
    emitter = UDPEmitter(udp_sink.address, background=True)
    for number in range(500):
        emitter.send_entity(_segment('r%03d' % number))
    assert emitter.flush(timeout=10)
    assert len(refusals) == 5
    assert [doc['name'] for doc in udp_sink.wait_for(500)] == ['r%03d' % number for number in range(500)]
    assert emitter.sent == 500 and emitter.dropped == 0


def test_a_daemon_that_is_not_listening_is_one_warning_and_counted_then_sending_recovers(caplog):
    caplog.set_level(logging.DEBUG, logger='aws_like_sdk')
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now: the kernel answers with ICMP refusals
    emitter = UDPEmitter('127.0.0.1:%d' % port, background=True)
    for number in range(300):
        emitter.send_entity(_segment('lost%d' % number))  # never raises into the application
    assert emitter.flush(timeout=10)
    dropped = emitter.dropped
    assert dropped > 0 and emitter.sent + dropped == 300
    warnings = [r for r in caplog.records if 'Nothing listens at the daemon address' in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    # A daemon starts listening there: nothing more is lost.
    with UDPSink(port=port) as sink:
        for number in range(300):
            emitter.send_entity(_segment('kept%03d' % number))
        assert emitter.flush(timeout=10)
        assert [doc['name'] for doc in sink.wait_for(300)] == ['kept%03d' % number for number in range(300)]
    assert emitter.dropped == dropped


def test_a_new_daemon_address_moves_the_batches_to_it():
    with UDPSink() as first, UDPSink() as second:
        emitter = UDPEmitter(first.address, background=True)
        for number in range(300):
            emitter.send_entity(_segment('a%d' % number))
        assert emitter.flush(timeout=10)
        old = emitter._aio
        assert old is not None
        emitter.set_daemon_address(second.address)
        assert old.sock.fileno() == -1  # closed, nothing was in flight
        for number in range(300):
            emitter.send_entity(_segment('b%d' % number))
        assert emitter.flush(timeout=10)
        assert len(first.wait_for(300)) == 300 and len(second.wait_for(300)) == 300
        first.settle(quiet=0.1)
        assert {doc['name'][0] for doc in first.documents()} == {'a'}
        assert {doc['name'][0] for doc in second.documents()} == {'b'}
        emitter.close()
        assert emitter._aio is None


_FORKING_PARENT = '''
import os, sys
from aws_like_sdk.core.emitters import posix_aio
from aws_like_sdk.core.emitters.udp_emitter import UDPEmitter
from aws_like_sdk.core.models.segment import Segment
emitter = UDPEmitter(sys.argv[1], background=True)
def send(prefix, count):
    for number in range(count):
        segment = Segment('%s%d' % (prefix, number)); segment.close(); emitter.send_entity(segment)
send('parent', 300)
assert emitter.flush(5) and emitter._aio is not None
pid = os.fork()
if pid == 0:
    send('child', 300)
    ok = emitter.flush(5) and emitter._aio is None and not posix_aio.available() and emitter.sent == 600
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
'''


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='needs fork')
def test_a_child_forked_from_a_parent_that_used_aio_sends_everything_with_sendmmsg(udp_sink):
    # glibc's AIO threads do not survive fork(): requests submitted in the child would never run.
    result = subprocess.run([sys.executable, '-c', _FORKING_PARENT, udp_sink.address], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    names = [doc['name'] for doc in udp_sink.wait_for(600)]
    assert sorted(names) == sorted(['parent%d' % n for n in range(300)] + ['child%d' % n for n in range(300)])


def test_the_environment_variable_turns_aio_off(monkeypatch, udp_sink):
    monkeypatch.setenv(POSIX_AIO_ENV, 'false')
    emitter = UDPEmitter(udp_sink.address, background=True)
    for number in range(300):
        emitter.send_entity(_segment('off%d' % number))
    assert emitter.flush(timeout=5)
    assert emitter._aio is None and emitter._last_submit == 0.0
    assert len(udp_sink.wait_for(300)) == 300


@pytest.mark.parametrize('cpus, setting, used', [(1, None, False), (2, None, True), (1.5, None, False),
                                                 (1, 'true', True), (4, 'false', False)])
def test_aio_is_used_by_default_only_where_two_cpus_can_run_the_process(monkeypatch, udp_sink, cpus, setting, used):
    from aws_like_sdk.core.emitters import udp_emitter
    # One CPU: AIO's per-datagram system calls would take turns with the requests (the sender thread's
    # one sendmmsg per batch costs less in all there).
    monkeypatch.setattr(udp_emitter, 'usable_cpus', lambda: cpus)
    if setting is None:
        monkeypatch.delenv(POSIX_AIO_ENV)
    else:
        monkeypatch.setenv(POSIX_AIO_ENV, setting)
    emitter = UDPEmitter(udp_sink.address, background=True)
    for number in range(200):
        emitter.send_entity(_segment('p%d' % number))
    assert emitter.flush(timeout=5)
    assert (emitter._aio is not None) is used
    assert len(udp_sink.wait_for(200)) == 200


def test_usable_cpus_follows_the_affinity_and_the_cgroup_quota():
    from aws_like_sdk.core.emitters import udp_emitter
    assert udp_emitter._quota_v2('max 100000') is None
    assert udp_emitter._quota_v2('150000 100000') == 1.5
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip('needs two CPUs to pin to one')
    code = ('import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); '
            'from aws_like_sdk.core.emitters.udp_emitter import usable_cpus; print(usable_cpus())')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == 1


# -- what a review found (each fails without its fix) -------------------------------------------------

def test_an_address_set_while_the_aio_socket_is_being_made_wins(monkeypatch):
    with UDPSink() as old_sink, UDPSink() as new_sink:
        emitter = UDPEmitter(old_sink.address, background=True)
        real_init = posix_aio.AioBatchSender.__init__
        raced = []

        def init_racing_an_address_change(self, target, send_timeout):
            real_init(self, target, send_timeout)
            if not raced:  # the application sets the address while the sender thread makes the socket
                raced.append(target)
                emitter.set_daemon_address(new_sink.address)

        monkeypatch.setattr(posix_aio.AioBatchSender, '__init__', init_racing_an_address_change)
        for number in range(300):
            emitter.send_entity(_segment('n%d' % number))
        assert emitter.flush(timeout=10)
        assert raced and len(new_sink.wait_for(300)) == 300
        assert emitter._aio.target[1] == new_sink.port
        old_sink.settle(quiet=0.1)
        assert old_sink.documents() == []


def test_a_batch_is_never_handed_to_a_retired_aio_sender(udp_sink):
    emitter = UDPEmitter(udp_sink.address, background=True)
    for number in range(300):
        emitter.send_entity(_segment('w%d' % number))
    assert emitter.flush(timeout=5)
    stale = emitter._aio
    emitter.close()  # its socket is closed: the descriptor number may belong to a new file now
    emitter._queue.extend(to_datagrams(_segment('late').to_dict()))
    with emitter._take_lock:  # what flush() or the sender thread does next, having seen it before close()
        assert emitter._hand_over_batch() is False
    assert stale.in_flight == 0 and len(emitter._queue) == 1
    emitter._queue.clear()


def test_a_socket_closed_with_batches_in_flight_stays_open_until_they_are_done(monkeypatch, udp_sink):
    # glibc still writes to the descriptor: closing it would let the application's next file take the
    # number and receive the datagrams. Batches that outlive close()'s wait are held back here.
    emitter = UDPEmitter(udp_sink.address, background=True)
    for number in range(300):
        emitter.send_entity(_segment('f%d' % number))
    assert emitter.flush(timeout=5)
    aio = emitter._aio
    batch = to_datagrams(_segment('in-flight').to_dict()) * 3
    with emitter._take_lock:
        assert aio.submit(batch)
    monkeypatch.setattr(posix_aio._Slot, 'done', lambda slot: False)  # as on a link that does not drain
    fd = aio.sock.fileno()
    emitter.close()
    assert emitter._aio is None and aio.sock.fileno() == fd  # left open
    assert posix_aio._abandoned
    del aio
    import gc
    gc.collect()
    assert os.path.exists('/proc/self/fd/%d' % fd)  # and freeing its sender does not close it
    monkeypatch.undo()
    abandoned = list(posix_aio._abandoned)
    posix_aio._sweep_abandoned()
    assert not posix_aio._abandoned and all(slot.sock is None for slot in abandoned)


def test_glibc_refusing_every_request_falls_back_to_sendmmsg_and_loses_nothing(monkeypatch, udp_sink, caplog):
    caplog.set_level(logging.WARNING, logger='aws_like_sdk')
    emitter = UDPEmitter(udp_sink.address, background=True)
    for number in range(50):
        emitter.send_entity(_segment('a%d' % number))
    assert emitter.flush(timeout=5) and emitter._aio is not None
    monkeypatch.setattr(posix_aio, '_lio_listio', lambda *args: -1)  # as when glibc cannot allocate
    for number in range(500):
        emitter.send_entity(_segment('b%03d' % number))
    assert emitter.flush(timeout=10)
    names = [doc['name'] for doc in udp_sink.wait_for(550)]
    assert names[50:] == ['b%03d' % number for number in range(500)]
    assert emitter._aio is None and emitter._use_aio is False and emitter.dropped == 0
    assert len([r for r in caplog.records if 'glibc refused' in r.getMessage()]) == 1


def test_close_lets_the_aio_socket_go_until_there_is_something_to_send(udp_sink):
    emitter = UDPEmitter(udp_sink.address, background=True)
    for number in range(200):
        emitter.send_entity(_segment('c%d' % number))
    assert emitter.flush(timeout=5)
    emitter.close()
    time.sleep(0.3)
    assert emitter._aio is None  # not reopened by the sender thread on its own
    for number in range(200):
        emitter.send_entity(_segment('d%d' % number))
    assert emitter.flush(timeout=5) and emitter._aio is not None
    assert len(udp_sink.wait_for(400)) == 400
