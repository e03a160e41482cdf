"""Send finished entities to the daemon as UDP datagrams. Never raises into the application."""
import atexit
import bisect
import collections
import errno
import itertools
import logging
import os
import socket
import threading
import time
import weakref
from typing import Optional, Tuple

from ..daemon_config import DEFAULT_ADDRESS, DaemonConfig
from ..exceptions.exceptions import InvalidDaemonAddressException
from ..models.pending_segment import PendingSegment
from ..utils.own_methods import is_bound_original
from . import multisend, posix_aio
from .encoding import PROTOCOL_DELIMITER, PROTOCOL_HEADER, to_datagrams  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

DEFAULT_DAEMON_ADDRESS = DEFAULT_ADDRESS

_emitters: 'weakref.WeakSet[UDPEmitter]' = weakref.WeakSet()


# Upper bound on datagrams (each at most 60 KiB) waiting for the sender thread. When the application outpaces the
# sender, the calling thread sends the datagram itself: memory stays bounded, nothing is dropped,
# and a process producing faster than it can send is slowed down rather than losing traces.
DEFAULT_MAX_QUEUE = 1024
_SENDER_IDLE_WAIT = 0.5
# An idle sender ends after this many idle waits in a row (a minute), letting go of its emitter: one
# replaced by configure(emitter=...) or made by a test does not keep a thread for the life of the
# process. The next send starts a new one.
_SENDER_IDLE_WAITS_BEFORE_EXIT = 120
# The sender lets datagrams gather before each send: a server handling one request at a time would
# otherwise pay a thread wake-up, a GIL handoff and a system call per request, which costs more than
# sending inline. After a wake-up from idle it gathers this long (light traffic: a short wait costs
# little, and documents reach the daemon promptly).
_SENDER_LINGER = 0.010
# While traffic lasts it waits up to this long between batches, and a producer wakes it as soon as a
# full batch is queued. Each batch takes the GIL twice from a request thread that is busy, and on a
# virtual machine each such handoff costs that thread two cross-CPU wake-ups (measured: a batch costs
# the event loop about 0.3 ms), so full batches are the cheapest; a batch never exceeds the byte
# bound that keeps one burst within a receiver's default buffer.
_SENDER_LINGER_BUSY = 0.050
# Intermittent failures (EAGAIN under a burst) alternate with successes; re-arming the once-per-cause
# error on every success would log an error (and a recovery) per dropped datagram.
_FAILURE_LOG_REARM_SECONDS = 60.0
_EXIT_FLUSH_SECONDS = 2.0
# How long the sender waits before trying again when glibc still has every AIO slot.
_AIO_SLOT_WAIT = 0.001
# The longest the sender waits between looks at the queue while producers hand batches over themselves.
_AIO_TIMER_MAX = 0.2
# How long glibc's AIO thread waits for room in a full send buffer, per datagram (the sender thread's
# sendmmsg waits WRITABLE_WAIT_SECONDS per batch): long enough for a real link to drain a datagram,
# short enough that a batch on a dead link does not stay in flight for minutes.
_AIO_WRITE_WAIT = 0.05
# A daemon host name that does not resolve is looked up again only after this long: every send
# retrying a lookup that hangs would stall the sender, and then the requests sending inline.
_RESOLVE_RETRY_SECONDS = 5.0
BACKGROUND_ENV = 'AWS_LIKE_SDK_BACKGROUND_SEND'
POSIX_AIO_ENV = 'AWS_LIKE_SDK_POSIX_AIO'


def _reset_locks_in_child() -> None:
    # A lock another thread held at fork() stays held forever in the child, and the first send there
    # takes it to open the child's own socket: replace it. The socket is left for the parent; the
    # child opens its own on first send (cheaper than comparing os.getpid() on every send). Queued
    # datagrams belong to the parent, which sends them; the child starts its own sender on demand.
    for emitter in list(_emitters):
        emitter._lock = threading.Lock()
        emitter._send_lock = threading.Lock()
        emitter._take_lock = threading.Lock()
        emitter._aio = None
        emitter._use_aio = None
        emitter._socket = None
        emitter._batch_sender = None
        emitter._queue.clear()
        emitter._wakeup = _idle_lock()
        emitter._thread = None
        emitter._sleeping = False
        emitter._busy = False
        emitter._flushing = []


_exit_hook_registered = False


def _idle_lock() -> threading.Lock:
    # The idle sender waits on this lock; a producer releases it to wake the sender. A bare lock
    # is one C call on the request path, where an Event would run a Python-level Condition.
    lock = threading.Lock()
    lock.acquire()
    return lock


def _background_by_default() -> bool:
    """Send from a background thread unless told otherwise, in Lambda, or without ``sendmmsg``.

    Waking the daemon costs the sender about as much as building the segment did; a sender thread
    that hands whole batches to the kernel in one call (GIL released) takes that off every request.
    Without ``sendmmsg`` a sender thread would fight the application for the GIL per datagram, and
    Lambda may freeze the process as soon as the handler returns: there, send inline.
    """
    setting = os.environ.get(BACKGROUND_ENV, '').strip().lower()
    if setting in ('0', 'false', 'no', 'off'):
        return False
    if os.environ.get('AWS_LAMBDA_FUNCTION_NAME') or os.environ.get('LAMBDA_TASK_ROOT'):
        return setting in ('1', 'true', 'yes', 'on')
    return multisend.available()


def _posix_aio_by_default() -> bool:
    """Hand full batches to glibc's AIO threads (see :mod:`.posix_aio`) where the process may use two
    CPUs or more, unless told otherwise.

    Why not with one: AIO writes each datagram with its own system calls, which costs more CPU in all
    than one ``sendmmsg`` per batch (about 1 µs a datagram here); it pays only where that work runs
    beside the request threads instead of taking turns with them (measured on one CPU: 3.5 µs a
    request more than the sender thread).
    """
    setting = os.environ.get(POSIX_AIO_ENV, '').strip().lower()
    if setting in ('0', 'false', 'no', 'off'):
        return False
    if setting not in ('1', 'true', 'yes', 'on') and usable_cpus() < 2:
        return False
    return posix_aio.available()


def usable_cpus() -> float:
    """CPUs this process may run on: its affinity, capped by a cgroup CPU quota (v2 or v1) if any."""
    try:
        count: float = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    for path, parse in (('/sys/fs/cgroup/cpu.max', _quota_v2), ('/sys/fs/cgroup/cpu/cpu.cfs_quota_us', _quota_v1)):
        try:
            with open(path) as file:
                quota = parse(file.read())
        except (OSError, ValueError):
            continue
        if quota is not None:
            return min(count, quota)
    return count


def _quota_v2(text: str) -> Optional[float]:
    # "max 100000" (no limit) or "<quota> <period>" in microseconds.
    fields = text.split()
    if not fields or fields[0] == 'max':
        return None
    return int(fields[0]) / int(fields[1] if len(fields) > 1 else 100000)


def _quota_v1(text: str) -> Optional[float]:
    quota = int(text)
    if quota <= 0:
        return None
    with open('/sys/fs/cgroup/cpu/cpu.cfs_period_us') as file:
        return quota / int(file.read())


def _flush_all_at_exit() -> None:
    deadline = time.monotonic() + _EXIT_FLUSH_SECONDS
    for emitter in list(_emitters):
        # What is sent from now on (an application's own exit hooks, threads still finishing) goes
        # inline: nothing would flush a queue again.
        emitter._background = False
        emitter.flush(max(0.0, deadline - time.monotonic()))
    posix_aio.keep_unfinished_forever()


def _register_exit_flush() -> None:
    """Flush every emitter when the process exits; RuntimeError once exit has begun.

    The hook runs where threading shuts down (before ``atexit`` hooks, so an application's exit hooks
    that still send are sent inline): that is also how ``multiprocessing`` children end, through
    ``os._exit()`` after ``threading._shutdown()``, where ``atexit`` hooks never run.
    """
    global _exit_hook_registered
    if _exit_hook_registered:
        return
    register = getattr(threading, '_register_atexit', None)  # CPython 3.9+; raises once exit began
    if register is not None:
        register(_flush_all_at_exit)
    else:
        atexit.register(_flush_all_at_exit)
    _exit_hook_registered = True


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_reset_locks_in_child)


class UDPEmitter:
    """One datagram per document: ``{"format":"json","version":1}\\n`` + compact JSON.

    The socket is created on first send (nothing happens at import) and again after ``fork()``; the
    address is resolved once. Documents over the datagram limit are split or shrunk, never lost.
    A failing send is logged once per cause and counted in ``dropped``.

    Entities are always serialised by the thread that ends them (so later changes to a sent entity
    cannot race the encoder). Where Linux's ``sendmmsg`` is available the datagrams are then handed to
    one background thread that sends whole batches per system call, so a request does not pay for
    waking the daemon; elsewhere, in Lambda, or with ``background=False`` (or the environment variable
    ``AWS_LIKE_SDK_BACKGROUND_SEND=false``) sending is inline. With glibc, the thread that completes a
    batch hands it to glibc's AIO threads itself (:mod:`.posix_aio`; ``AWS_LIKE_SDK_POSIX_AIO=false``
    turns that off), and the background thread only sends what waits longer than a linger. Waiting
    datagrams are bounded; when the bound is reached the caller sends itself (backpressure, never
    loss). The queue is flushed at interpreter exit, and :meth:`flush` waits for it on demand.

    Args:
        daemon_address: ``host:port`` or ``tcp:host:port udp:host:port``;
            ``AWS_XRAY_DAEMON_ADDRESS`` wins.
        background: True/False to force background or inline sending; None (default) decides on
            the first send as described above.
        max_queue: datagrams allowed to wait for the background thread; past it the caller sends.
    """

    @property
    def accepts_documents(self) -> bool:
        """True while :meth:`send_entity` is this class's own: it only serialises what it is given
        (``to_dict()``), so the recorder may hand it a request's document without building the segment
        object (see ``begin_deferred_segment``).

        False once ``send_entity`` is anything else, which may read the segment's attributes: a
        subclass's or a mixin's, a patch on the class or the instance (``mock.patch.object``), unless
        the subclass declares ``accepts_documents = True`` itself. Assigning a bool on an instance
        overrides it.
        """
        override = self._accepts_documents
        if override is not None:
            return override
        # A subclass's or mixin's send_entity, or one patched or wrapped on the class or the instance,
        # is not ours; the original bound method assigned back (how monkeypatch restores) is.
        return is_bound_original(self.send_entity, _OWN_SEND_ENTITY, self)

    @accepts_documents.setter
    def accepts_documents(self, value: bool) -> None:
        self._accepts_documents = bool(value)

    # Set by assigning accepts_documents on an instance: then it says, whatever send_entity is.
    _accepts_documents: Optional[bool] = None

    def __init__(self, daemon_address: str = DEFAULT_DAEMON_ADDRESS, background: Optional[bool] = None,
                 max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        # None: decided on first send, so constructing the global recorder loads nothing.
        self._background = background
        self._max_queue = max_queue
        self._queue: 'collections.deque' = collections.deque()
        self._wakeup = _idle_lock()
        self._thread: Optional[threading.Thread] = None
        self._sleeping = False
        self._busy = False
        # Queued datagrams that make one full batch: producers wake a lingering sender at this count.
        # Estimated by the sender from the sizes it sends (the footprint bound is what usually fills a batch).
        self._full_batch = multisend.MAX_BATCH
        # Set while flush() waits: the sender then sends at once instead of lingering for a batch.
        # (A list: append and pop are atomic, so concurrent flushes need no lock to count themselves.)
        self._flushing: list = []
        self._lock = threading.Lock()
        # Held while a batch is handed to the kernel: close() waits for it, because the batch call
        # uses the socket's descriptor number, which a closed socket frees for any file to reuse.
        self._send_lock = threading.Lock()
        # Held by whoever takes from the queue (the sender thread, or a producer handing a full batch
        # to the AIO threads), so batches leave in queue order; it also guards the AIO sender.
        self._take_lock = threading.Lock()
        self._use_aio: Optional[bool] = None  # decided by the sender thread on its first batch
        self._aio: Optional[posix_aio.AioBatchSender] = None
        self._aio_refused: set = set()  # targets an AIO socket could not connect to (e.g. broadcast)
        # Counts daemon address changes, so an AIO sender made for an address replaced meanwhile is
        # never installed.
        self._address_generation = 0
        # When a batch was last handed to the AIO threads (time.monotonic()).
        self._last_submit = 0.0
        _emitters.add(self)
        self._socket: Optional[socket.socket] = None
        self._socket_pid = 0
        self._target: Optional[Tuple[str, int]] = None
        self._resolve_error: Optional[OSError] = None
        self._resolve_retry_at = 0.0
        self._batch_sender: Optional[multisend.BatchSender] = None
        self._failures_logged: set = set()
        self._failure_logged_at = 0.0
        self._sent = 0
        self.dropped = 0
        try:
            config = DaemonConfig(daemon_address)
        except InvalidDaemonAddressException as exc:
            # Never fail at import time; configure(daemon_address=...) raises for a bad value.
            log.error('%s Using %s until configure() sets a valid address.', exc, DEFAULT_ADDRESS)
            self._ip, self._port = '127.0.0.1', 2000
            return
        self._ip, self._port = config.udp_ip, config.udp_port

    @property
    def sent(self) -> int:
        """Datagrams the kernel has taken (those handed to the AIO threads once glibc reports them
        written)."""
        aio = self._aio
        if aio is not None and aio.in_flight and self._take_lock.acquire(False):
            try:
                self._reap(aio)
            finally:
                self._take_lock.release()
        return self._sent

    @sent.setter
    def sent(self, value: int) -> None:
        self._sent = value

    @property
    def background(self) -> bool:
        """Whether datagrams leave from the background sender thread."""
        if self._background is None:
            self._background = _background_by_default()
        return self._background

    def send_entity(self, entity) -> None:
        """Serialise ``entity`` and send (or queue) its datagrams; never raises."""
        try:
            # A deferred request's document as it stands: to_datagrams never changes what it is given,
            # so the copy to_dict makes for other emitters is not needed here.
            payloads = to_datagrams(entity.document if entity.__class__ is PendingSegment else entity.to_dict())
        except Exception:  # noqa: BLE001 - a bad entity must never break the application
            log.exception('Failed to serialise entity %r; dropped.', getattr(entity, 'name', None))
            self.dropped += 1
            return
        queue = self._queue
        if self._background and len(queue) < self._max_queue:
            queue.extend(payloads)  # the usual case, in one call
        elif not self._queue_or_send(payloads):
            return
        if self._thread is None:
            self._start_sender()
        elif self._aio is not None:
            if len(queue) >= self._full_batch:
                self._submit_from_producer()  # a full batch: hand it to the AIO threads from here
            elif self._sleeping:
                self._wake_sender()
        elif self._sleeping or (len(queue) >= self._full_batch and self._wakeup.locked()):
            # Asleep, or lingering while a full batch waits (still locked: nobody has woken it yet).
            self._wake_sender()

    def _queue_or_send(self, payloads: list) -> bool:
        """Queue what the bound allows and send the rest from here; False when sending is inline."""
        if not self.background:
            for payload in payloads:
                self._send_data(payload)
            return False
        queue = self._queue
        for payload in payloads:
            if len(queue) >= self._max_queue:
                self._send_data(payload)
            else:
                queue.append(payload)
        return True

    def _submit_from_producer(self) -> None:
        """Hand the next batch to glibc's AIO threads from this (the application's) thread.

        Why not the sender thread: it would take the GIL from this thread twice per batch, which costs
        a busy request thread more than submitting does (see :mod:`.posix_aio`). Best effort: a thread
        already taking from the queue sends these too; when glibc still has every slot, the next
        send (or the sender thread) tries again.
        """
        if not self._take_lock.acquire(False):
            return
        try:
            self._hand_over_batch()
        finally:
            self._take_lock.release()

    def _reap(self, aio: posix_aio.AioBatchSender) -> None:
        """Count the AIO batches that are done (caller holds _take_lock)."""
        self._count_sent(*aio.reap())

    def _count_sent(self, sent: int, errors: list) -> None:
        """Count what a batch call (or glibc) reports: datagrams sent, and the errno of each other."""
        self._sent += sent
        for error in errors:
            self._count_failure(OSError(error, os.strerror(error)))
        if sent and self._failures_logged:
            self._note_recovery()

    def _note_batch(self, count: int, footprint: int) -> None:
        # How many datagrams of the sizes just sent fill a batch (by count or by footprint).
        fitting = multisend.MAX_BATCH_FOOTPRINT * count // max(footprint, 1)
        self._full_batch = max(1, min(multisend.MAX_BATCH, fitting))

    def _wake_sender(self) -> None:
        try:
            self._wakeup.release()
        except RuntimeError:
            pass  # already released by another producer: the sender is waking up

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until the queue is empty and its last batch sent (or dropped); False on timeout.

        Datagrams other threads queue meanwhile count too: under sustained traffic from other threads the
        queue may never be empty, and a short timeout then returns False although everything queued
        before the call has long been sent.
        """
        deadline = time.monotonic() + timeout
        self._flushing.append(None)
        try:
            while self._queue or self._busy:
                if self._thread is None or not self._thread.is_alive():
                    # No sender (e.g. stopped at shutdown): send what is left from here.
                    self._drain()
                    break
                if time.monotonic() >= deadline:
                    return False
                if self._aio is not None:
                    # Hand what is queued to the AIO threads from here: no need to wait for the sender.
                    with self._take_lock:
                        refused = self._hand_over_batch()
                    if refused:
                        time.sleep(_AIO_SLOT_WAIT)
                    continue
                self._wake_sender()
                time.sleep(0.0002)
            return self._wait_for_aio(deadline)
        finally:
            self._flushing.pop()

    def _wait_for_aio(self, deadline: float) -> bool:
        if self._aio is None:
            return True
        # Under the lock: a producer that took a batch from the queue has handed it over by then.
        with self._take_lock:
            aio = self._aio
            if aio is None or not aio.in_flight:
                return True
            written, errors = aio.wait(max(0.0, deadline - time.monotonic()))
            self._count_sent(written, errors)
            return not aio.in_flight

    def _start_sender(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            try:
                _register_exit_flush()
                thread = threading.Thread(target=self._sender_loop, name='aws_like_sdk-udp-emitter', daemon=True)
                thread.start()
            except RuntimeError as exc:
                # The interpreter is exiting (a first send from an exit hook), or no thread can be
                # started: send inline from now on rather than queue for a sender that never runs.
                log.debug('No background sender (%s); sending inline.', exc)
                self._background = False
            else:
                self._thread = thread
                return
        self._drain()

    def _take_batch(self) -> Tuple[list, int]:
        """The next batch (within the count and receive-buffer bounds) and its estimated footprint."""
        # Callers hold _take_lock: only one thread takes from the queue, so at least len(queue) items
        # are there to pop.
        queue = self._queue
        # As many as a batch of the sizes seen last holds (see _note_batch), so the quick check below
        # usually settles it.
        count = min(len(queue), self._full_batch)
        batch = list(itertools.starmap(queue.popleft, itertools.repeat((), count)))
        if not batch:
            return batch, 0
        # Quick upper bound: every datagram as large as the largest one.
        bound = multisend.footprints((max(batch, key=len),))[0] * count
        if bound <= multisend.MAX_BATCH_FOOTPRINT:
            return batch, bound
        charges = list(itertools.accumulate(multisend.footprints(batch)))
        keep = bisect.bisect_right(charges, multisend.MAX_BATCH_FOOTPRINT) or 1
        if keep < len(batch):
            # Keep what fits one receiver's buffer (at least one), put the rest back in front.
            queue.extendleft(reversed(batch[keep:]))
            del batch[keep:]
        return batch, charges[keep - 1]

    def _sender_loop(self) -> None:
        while True:
            try:
                aio = self._aio_sender()
                if self._aio_timer_loop() if aio is not None else self._batch_loop():
                    return  # ended idle
            except Exception:  # noqa: BLE001 - the sender thread must survive anything
                log.exception('Background sender failed; it carries on.')
                time.sleep(_SENDER_LINGER)

    def _batch_loop(self) -> bool:
        """Take batches from the queue and send them with ``sendmmsg``; True once ended idle."""
        queue = self._queue
        idle_waits = 0
        while True:
            self._busy = True
            with self._take_lock:
                batch, footprint = self._take_batch()
            if not batch:
                self._busy = False
                # A whole linger passed without a datagram: sleep until a producer wakes us.
                if self._sleep_until_woken():
                    idle_waits = 0
                    if not self._flushing:
                        self._linger()
                else:
                    idle_waits += 1
                    if idle_waits >= _SENDER_IDLE_WAITS_BEFORE_EXIT and self._stop_when_idle():
                        return True
                continue
            idle_waits = 0
            try:
                self._send_batch(batch)
            except Exception:  # noqa: BLE001 - the sender thread must survive anything
                log.exception('Background sender failed; %d datagrams dropped.', len(batch))
                self.dropped += len(batch)
            finally:
                self._busy = False
            self._note_batch(len(batch), footprint)
            if len(queue) < self._full_batch and not self._flushing:
                # While traffic lasts the sender paces itself: it waits for a full batch (a producer
                # then wakes it) or the busy linger, whichever comes first. With a full batch (or
                # more) already waiting it sends again at once.
                self._linger(_SENDER_LINGER_BUSY)

    def _aio_timer_loop(self) -> bool:
        """The sender thread's part while producers hand full batches to the AIO threads themselves.

        It sends what no full batch takes along: what came in the busy linger after a quiet spell
        (light traffic: the request threads only wake it, which costs them far less than submitting
        cold), a tail left when traffic stopped, and everything at once when flush() asks. While
        producers keep the queue moving it looks less and less often, up to _AIO_TIMER_MAX apart,
        because every look takes the GIL from them.
        Returns True once ended idle, False when the AIO sender was retired (a new address).
        """
        queue = self._queue
        period = _SENDER_LINGER_BUSY
        idle_waits = 0
        woken_at = None  # when a producer woke it from a quiet spell
        while True:
            if not queue:
                woken_at = None
                if self._sleep_until_woken():
                    idle_waits, period, woken_at = 0, _SENDER_LINGER_BUSY, time.monotonic()
                    if not self._flushing:
                        # Let a batch gather: under load producers hand it over themselves meanwhile.
                        self._linger(_SENDER_LINGER_BUSY)
                else:
                    idle_waits += 1
                    if idle_waits >= _SENDER_IDLE_WAITS_BEFORE_EXIT and self._stop_when_idle():
                        return True
                continue
            if self._aio is None:
                return False  # retired (close(), a new address, glibc refusing): decide again
            # Send if nothing was handed over since the wake-up (light traffic), or for a long while.
            quiet = self._last_submit < woken_at if woken_at is not None \
                else time.monotonic() - self._last_submit >= _SENDER_LINGER_BUSY
            woken_at = None
            if quiet or self._flushing or len(queue) >= self._full_batch:
                self._busy = True
                with self._take_lock:
                    refused = self._hand_over_batch()
                self._busy = False
                if refused:
                    time.sleep(_AIO_SLOT_WAIT)  # glibc still has every slot: wait for one
                    continue
                period = _SENDER_LINGER_BUSY
            else:
                period = min(2 * period, _AIO_TIMER_MAX)  # producers keep the queue moving
            if queue and not self._flushing and len(queue) < self._full_batch:
                self._wakeup.acquire(timeout=period)  # flush() wakes it early

    def _sleep_until_woken(self) -> bool:
        """Sleep until a producer wakes this thread (True) or an idle wait passes (False)."""
        # Announce the sleep, then look once more: a producer that appended before seeing the flag is
        # caught by this check, one that appended after it releases the lock.
        self._sleeping = True
        woken = False
        if not self._queue:
            woken = self._wakeup.acquire(timeout=_SENDER_IDLE_WAIT)
        self._sleeping = False
        return woken

    def _hand_over_batch(self) -> bool:
        """Take the next batch and hand it to the AIO threads (caller holds _take_lock); True when
        refused (every slot still in flight), the batch then back at the front of the queue."""
        # Read under the lock: a sender retired meanwhile (close(), a new address) is gone from here,
        # and its descriptor may already belong to another file.
        aio = self._aio
        if aio is None:
            return False
        if aio.needs_reaping:  # (otherwise counted later: flush(), reading ``sent``)
            self._reap(aio)
        batch, footprint = self._take_batch()
        if not batch:
            return False
        try:
            if aio.submit(batch):
                self._last_submit = time.monotonic()
                self._note_batch(len(batch), footprint)
                return False
        except posix_aio.AioRefused as exc:
            # Not a busy moment (a slot was free): glibc cannot take requests. The sender thread sends
            # with sendmmsg from now on.
            log.warning('glibc refused a batch of AIO writes (%s); sending batches with sendmmsg instead.', exc)
            self._use_aio = False
            self._drop_aio(0.0)
            self._wake_sender()
        except Exception:  # noqa: BLE001 - never into the application; it stays queued
            log.exception('Could not hand a batch to the AIO threads.')
        self._queue.extendleft(reversed(batch))
        return True

    def _aio_sender(self) -> Optional[posix_aio.AioBatchSender]:
        """The AIO sender for the daemon's address, made on first use; None where batches go out with
        ``sendmmsg`` instead (no glibc, turned off, an address it cannot connect to)."""
        aio = self._aio
        if aio is not None:
            return aio
        if self._use_aio is None:
            self._use_aio = _posix_aio_by_default()
        if not self._use_aio:
            return None
        generation = self._address_generation
        try:
            _sock, target = self._socket_and_target()
        except Exception:  # noqa: BLE001 - counted where the batch is sent
            return None
        if target in self._aio_refused:
            return None
        try:
            aio = posix_aio.AioBatchSender(target, _AIO_WRITE_WAIT)
        except OSError as exc:
            log.debug('No AIO socket for %s (%s); sending batches with sendmmsg.', target, exc)
            self._aio_refused.add(target)
            return None
        with self._take_lock:
            if generation == self._address_generation and self._use_aio:
                self._aio = aio
                return aio
        aio.close(0.0)  # made for an address replaced meanwhile: make one for the new address
        return self._aio_sender()

    def _retire_aio(self) -> None:
        """Let the AIO sender finish (bounded) and close it; the next batch makes a new one."""
        with self._take_lock:
            self._drop_aio(_EXIT_FLUSH_SECONDS)

    def _drop_aio(self, timeout: float) -> None:
        """Take the AIO sender out of use, close it and count what it finished (caller holds _take_lock)."""
        aio, self._aio = self._aio, None
        if aio is not None:
            self._count_sent(*aio.close(timeout))

    def _stop_when_idle(self) -> bool:
        """Let this sender thread end if nothing is queued; False if a datagram came in meanwhile."""
        with self._lock:
            if self._queue:
                return False
            self._thread = None
        # A producer that queued before seeing the thread gone may have found it still set and only
        # released the wake-up lock: hand its datagrams to a new sender.
        if self._queue:
            self._start_sender()
        return True

    def _linger(self, seconds: Optional[float] = None) -> None:
        # Let datagrams gather for one batch; flush() and a full batch cut the wait short by
        # releasing the lock.
        self._wakeup.acquire(timeout=_SENDER_LINGER if seconds is None else seconds)

    def _send_batch(self, batch: list) -> None:
        with self._send_lock:
            try:
                sock, target = self._socket_and_target()
            except Exception as exc:  # noqa: BLE001 - e.g. the address no longer resolves
                for _ in batch:
                    self._count_failure(exc)
                return
            sender = self._batch_sender
            if sender is None or sender.target != target or sender.sock is not sock:
                sender = self._batch_sender = multisend.batch_sender_for(sock, target)
            if sender is None:
                for payload in batch:
                    self._send_data(payload)
                return
            sent, failures = sender.send(batch)
        self._count_sent(sent, [error for _index, error in failures])

    def _drain(self) -> None:
        # Called by flush() when there is no sender thread; several threads may drain, one after another.
        with self._take_lock:
            popleft = self._queue.popleft
            while True:
                try:
                    payload = popleft()
                except IndexError:
                    return
                self._send_data(payload)

    def set_daemon_address(self, address: Optional[str]) -> None:
        """Point the emitter at ``address`` (the environment variable still wins).

        Raises:
            InvalidDaemonAddressException: when the effective address cannot be parsed.
        """
        if not address and not os.environ.get('AWS_XRAY_DAEMON_ADDRESS'):
            return
        config = DaemonConfig(address)
        with self._lock:
            self._ip, self._port = config.udp_ip, config.udp_port
            self._target = None
            self._resolve_retry_at = 0.0
            self._address_generation += 1
        self._retire_aio()  # its socket is connected to the old address

    @property
    def ip(self) -> str:
        return self._ip

    @property
    def port(self) -> int:
        return self._port

    def _send_data(self, data: bytes) -> None:
        try:
            sock, target = self._socket_and_target()
            sock.sendto(data, target)
        except Exception as exc:  # noqa: BLE001 - emission never raises into the app
            self._count_failure(exc)
            return
        self._sent += 1
        if self._failures_logged:
            self._note_recovery()

    def _note_recovery(self) -> None:
        if time.monotonic() - self._failure_logged_at >= _FAILURE_LOG_REARM_SECONDS:
            self._failures_logged.clear()
            log.info('Sending to the daemon at %s:%s works again.', self._ip, self._port)

    def _count_failure(self, exc: BaseException) -> None:
        self.dropped += 1
        cause = (type(exc).__name__, getattr(exc, 'errno', None))
        if cause not in self._failures_logged:
            self._failures_logged.add(cause)
            self._failure_logged_at = time.monotonic()
            if cause[1] == errno.ECONNREFUSED:
                # Reported on the connected socket the AIO threads write to: no daemon is listening.
                log.warning('Nothing listens at the daemon address %s:%s (connection refused); documents '
                            'are dropped until a daemon does (further refusals are logged at debug level).',
                            self._ip, self._port)
                return
            log.error('Failed to send entity to Daemon at %s:%s: %s (further %s failures are logged '
                      'at debug level).', self._ip, self._port, exc, cause[0])
        else:
            log.debug('Failed to send entity to Daemon: %s', exc)

    def _socket_and_target(self) -> Tuple[socket.socket, Tuple[str, int]]:
        sock, target = self._socket, self._target
        if sock is not None and target is not None:
            return sock, target
        with self._lock:
            if self._socket is None:
                new_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                new_sock.setblocking(False)
                self._socket, self._socket_pid = new_sock, os.getpid()
            if self._target is None:
                now = time.monotonic()
                failed = self._resolve_error
                if failed is not None and now < self._resolve_retry_at:
                    raise type(failed)(*failed.args)  # a fresh one: re-raising one object grows its traceback
                try:
                    info = socket.getaddrinfo(self._ip, self._port, socket.AF_INET, socket.SOCK_DGRAM)
                except OSError as exc:
                    self._resolve_error, self._resolve_retry_at = exc, now + _RESOLVE_RETRY_SECONDS
                    raise
                self._target = info[0][4]
            return self._socket, self._target

    def close(self) -> None:
        """Close the sockets (after batches being sent, if any); the next send opens new ones."""
        self._retire_aio()
        with self._send_lock, self._lock:
            if self._socket is not None:
                self._socket.close()
            self._socket = None
            self._batch_sender = None


# UDPEmitter's own send_entity, before anyone patches the class (see UDPEmitter.accepts_documents).
_OWN_SEND_ENTITY = UDPEmitter.send_entity
