"""Hand whole batches of UDP datagrams to glibc's POSIX AIO threads with one ``lio_listio(3)`` call.

Why: a Python sender thread needs the GIL twice per batch (to pick the batch up, and when its system
call returns), and takes it from a busy request thread each time; on a virtual machine every such
handoff makes the request thread sleep until another CPU wakes it (measured: about 2 µs a request on
a busy aiohttp event loop). glibc runs AIO requests on its own C threads, which never touch the GIL:
the request thread that completes a batch submits it in one call and goes on, and the datagrams are
written from another CPU. Each request is a ``write`` on a connected socket, served in order, one
at a time per descriptor.

Used only where it is known to work: glibc on 64-bit Linux, after a self-test (two writes through a
pipe, read back) has shown that the structure layout below is the library's. After ``fork()`` a child
never uses it if its parent did: glibc's AIO bookkeeping (its helper threads, their counts) does not
survive a fork, and requests submitted there would never run.

Memory the C threads use (the request structures, the payload bytes) is kept alive until they report
completion, and is never freed while a request may still run: batches a sender gives up on stay
referenced by this module.
"""
import array
import collections
import ctypes
import errno
import itertools
import logging
import os
import platform
import socket
import sys
import threading
import time
from typing import Any, Deque, List, Optional, Set, Tuple

from .libc import libc_function

log = logging.getLogger(__name__)

# struct aiocb on 64-bit glibc (x86_64, aarch64): 168 bytes. Offsets in bytes.
_AIOCB_SIZE = 168
_FILDES, _OPCODE, _BUF, _NBYTES, _SIGEV_NOTIFY, _ERROR_CODE, _RETURN_VALUE = 0, 4, 16, 24, 44, 112, 120
_LIO_WRITE, _LIO_NOWAIT, _SIGEV_NONE = 1, 1, 1
_EINPROGRESS = 115
# Written into each request's error code before submitting: a request glibc did not take keeps it.
_NOT_QUEUED = -1
# Structures per sender: batches that may be in glibc's hands at once.
SLOTS = 4
MAX_BATCH = 256
_INTS = _AIOCB_SIZE // 4
_WORDS = _AIOCB_SIZE // 8
SELF_TEST_SECONDS = 1.0

_lio_listio: Any = None
_state_lock = threading.Lock()
_verdict: Optional[bool] = None  # None: not tested in this process yet
_used = False  # a request was submitted in this process (a forked child must not use AIO then)
# Batches submitted and not yet seen complete, whichever sender they belong to: their memory may be
# in use by a C thread, so they stay referenced here until then (and for good at exit, see
# keep_unfinished_forever).
_submitted: Set['_Slot'] = set()
# Slots of senders that are gone (closed with batches in flight, or garbage-collected): swept once done.
_abandoned: List['_Slot'] = []


class AioRefused(OSError):
    """glibc took none of a batch's requests (it could not allocate them, say)."""


def _after_fork_in_child() -> None:
    global _verdict, _used, _state_lock
    _state_lock = threading.Lock()
    if _used:
        _verdict = False  # glibc's AIO state was copied mid-life: never use it here
    else:
        _verdict = None  # test again in the child (the parent may have used AIO some other way)


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _bytes_data_offset() -> int:
    """Where CPython keeps a bytes object's data, relative to id(); 0 where that does not hold."""
    if platform.python_implementation() != 'CPython':
        return 0
    offset = sys.getsizeof(b'') - 1  # the header, then the data and its terminating NUL
    probe = bytes(range(256)) * 2
    try:
        return offset if ctypes.string_at(id(probe) + offset, len(probe)) == probe else 0
    except Exception:  # noqa: BLE001
        return 0


_BYTES_DATA_OFFSET = _bytes_data_offset()
_ONLY_BYTES = {bytes}


def keep_unfinished_forever() -> None:
    """At interpreter exit: batches still in glibc's hands must outlive the interpreter's teardown,
    which would free their memory under a C thread that still writes to it."""
    for slot in list(_submitted):
        if not slot.done():
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(slot))


def _load() -> Any:
    if ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    # glibc only: the layout above is glibc's.
    return libc_function('lio_listio', [ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p],
                         glibc_only=True)


def available() -> bool:
    """True when batches can be handed to glibc's AIO threads here (self-tested once per process)."""
    global _verdict, _lio_listio
    if _verdict is not None:
        return _verdict
    with _state_lock:
        if _verdict is None:
            _lio_listio = _lio_listio or _load()
            _verdict = _lio_listio is not None and _self_test()
            log.debug('POSIX AIO batches %s.', 'available' if _verdict else 'unavailable')
    return _verdict


def _self_test() -> bool:
    """Write two payloads through a pipe with the structures as laid out above and read them back."""
    read_end, write_end = os.pipe()
    slot = _Slot(write_end)
    try:
        if not slot.submit([b'ab', b'cde']):
            return False
        deadline = time.monotonic() + SELF_TEST_SECONDS
        while not slot.done():
            if time.monotonic() >= deadline:
                # Never ran (glibc's AIO broken in this process): the pipe and the slot stay as they are.
                log.debug('POSIX AIO self-test timed out.')
                return False
            time.sleep(0.001)
        returned = [slot.ints[index * _INTS + _ERROR_CODE // 4] for index in range(2)]
        written = [slot.words[index * _WORDS + _RETURN_VALUE // 8] for index in range(2)]
        ok = returned == [0, 0] and written == [2, 3] and os.read(read_end, 16) == b'abcde'
        slot.reap()
        os.close(read_end)
        os.close(write_end)
        return ok
    except Exception:  # noqa: BLE001 - any surprise means: do not use it
        log.debug('POSIX AIO self-test failed.', exc_info=True)
        return False


class _Slot:
    """The request structures for one batch, and the bytes they point into while glibc has them."""

    def __init__(self, fd: int) -> None:
        self.raw = (ctypes.c_char * (_AIOCB_SIZE * MAX_BATCH))()
        view = memoryview(self.raw).cast('B')
        self.ints = view.cast('i')
        self.words = view.cast('Q')
        # The fields that never change: descriptor, operation, no completion signal.
        self.ints[_FILDES // 4::_INTS] = array.array('i', [fd]) * MAX_BATCH
        self.ints[_OPCODE // 4::_INTS] = array.array('i', [_LIO_WRITE]) * MAX_BATCH
        self.ints[_SIGEV_NOTIFY // 4::_INTS] = array.array('i', [_SIGEV_NONE]) * MAX_BATCH
        base = ctypes.addressof(self.raw)
        self.pointers = (ctypes.c_void_p * MAX_BATCH)(*range(base, base + _AIOCB_SIZE * MAX_BATCH, _AIOCB_SIZE))
        self.count = 0
        self.blob: Any = b''  # what the requests point into (the payloads, or one joined copy)
        # The socket whose descriptor the requests write to: referenced while they may run, so that
        # freeing its sender cannot close it (and let a new file take its number) under them.
        self.sock: Any = None

    def submit(self, payloads: List[bytes], sock: Any = None) -> bool:
        """Hand ``payloads`` (at most MAX_BATCH) to glibc, writing to ``sock``; False if it took none."""
        global _used
        if _abandoned:
            _sweep_abandoned()
        count = len(payloads)
        end = _WORDS * count
        if _BYTES_DATA_OFFSET and set(map(type, payloads)) == _ONLY_BYTES:
            # Each payload's own bytes, where CPython keeps them: no copy. The slot keeps the payloads.
            kept: Any = payloads
            starts = array.array('Q', map(_BYTES_DATA_OFFSET.__add__, map(id, payloads)))
        else:
            kept = b''.join(payloads)
            base = ctypes.cast(ctypes.c_char_p(kept), ctypes.c_void_p).value or 0
            starts = array.array('Q', itertools.accumulate(map(len, payloads[:-1]), initial=base))
        self.words[_BUF // 8:end:_WORDS] = starts
        self.words[_NBYTES // 8:end:_WORDS] = array.array('Q', map(len, payloads))
        self.ints[_ERROR_CODE // 4:_INTS * count:_INTS] = array.array('i', [_NOT_QUEUED]) * count
        self.count, self.blob, self.sock = count, kept, sock
        _used = True
        _submitted.add(self)
        if _lio_listio(_LIO_NOWAIT, ctypes.addressof(self.pointers), count, None) == 0:
            return True
        # Some or all were refused (EAGAIN: glibc could not allocate); what it took still runs.
        if self.errors().count(_NOT_QUEUED) == count:
            _submitted.discard(self)
            self.count, self.blob, self.sock = 0, b'', None
            return False
        return True

    def errors(self) -> List[int]:
        return self.ints[_ERROR_CODE // 4:_INTS * self.count:_INTS].tolist()

    def done(self) -> bool:
        count = self.count
        if not count:
            return True
        last = self.ints[_INTS * (count - 1) + _ERROR_CODE // 4]
        if last == _EINPROGRESS:
            return False
        # glibc runs one descriptor's requests one at a time, in order: once the last is finished all
        # are, unless the last was never queued (lio_listio took only some).
        return last != _NOT_QUEUED or _EINPROGRESS not in self.errors()

    def reap(self) -> Tuple[int, List[int]]:
        """(datagrams written, error numbers of the others) of a batch that is done; frees its bytes."""
        codes = self.errors()
        errors = [] if codes.count(0) == len(codes) else [error for error in codes if error]
        written = self.count - len(errors)
        self.count, self.blob, self.sock = 0, b'', None
        _submitted.discard(self)
        return written, [error if error != _NOT_QUEUED else 11 for error in errors]  # 11: EAGAIN


def _sweep_abandoned() -> None:
    """Let go of the abandoned slots glibc is done with (their payloads and socket with them)."""
    for slot in [slot for slot in _abandoned if slot.done()]:
        _abandoned.remove(slot)
        slot.reap()


class AioBatchSender:
    """Submits batches as writes on one connected UDP socket of its own. Not thread-safe: callers
    serialise :meth:`submit`, :meth:`reap` and :meth:`close`."""

    def __init__(self, target: Tuple[str, int], send_timeout: float) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # Blocking, so a full send buffer (a real link) makes the C thread wait for room, for at
            # most send_timeout per datagram, instead of dropping.
            seconds = int(send_timeout)
            timeval = array.array('q', [seconds, int((send_timeout - seconds) * 1e6)]).tobytes()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
            sock.connect(target)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.target = target
        self._fd = sock.fileno()
        self._free: Deque[_Slot] = collections.deque()
        self._slot_count = 0
        self._in_flight: Deque[_Slot] = collections.deque()
        # Set when a write was refused: until the next submit clears the socket's pending error.
        self.refused = False

    @property
    def needs_reaping(self) -> bool:
        """Every slot is in use: :meth:`submit` would refuse until :meth:`reap` frees one."""
        return not self._free and self._slot_count >= SLOTS

    @property
    def in_flight(self) -> int:
        """Batches submitted and not yet reaped."""
        return len(self._in_flight)

    def submit(self, payloads: List[bytes]) -> bool:
        """Hand a batch to glibc; False (nothing taken) when every slot is still in flight.

        Raises:
            AioRefused: glibc took none of the requests although a slot was free.
        """
        try:
            slot = self._free.popleft()
        except IndexError:
            if self._slot_count >= SLOTS:
                return False
            slot = _Slot(self._fd)
            self._slot_count += 1
        if self.refused:
            # A connected UDP socket keeps the error of an ICMP refusal (no daemon listening) and fails
            # its next write with it: clear it, so a daemon that has come back meanwhile loses nothing.
            # (While none listens, the writes themselves fail and are counted.)
            # Clearing goes on while it finds one: the last write before a daemon came back may
            # have been refused without a write after it to show it.
            self.refused = bool(self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
        if not slot.submit(payloads, self.sock):
            self._free.appendleft(slot)
            raise AioRefused(ctypes.get_errno(), 'lio_listio took none of %d requests' % len(payloads))
        self._in_flight.append(slot)
        return True

    def reap(self) -> Tuple[int, List[int]]:
        """Collect the batches that are done, oldest first: (datagrams written, [errno, ...])."""
        written, errors = 0, []
        in_flight = self._in_flight
        while in_flight and in_flight[0].done():
            slot = in_flight.popleft()
            count, failed = slot.reap()
            written += count
            if failed:
                errors.extend(failed)
                self.refused = self.refused or errno.ECONNREFUSED in failed
            self._free.append(slot)
        return written, errors

    def wait(self, timeout: float) -> Tuple[int, List[int]]:
        """Reap until nothing is in flight or ``timeout`` passes; what :meth:`reap` returns, summed."""
        deadline = time.monotonic() + timeout
        written, errors = self.reap()
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.0002)
            more, failed = self.reap()
            written += more
            errors.extend(failed)
        return written, errors

    def close(self, timeout: float) -> Tuple[int, List[int]]:
        """Close the socket once nothing is in flight; returns what :meth:`wait` does.

        Batches still in flight after ``timeout`` keep the socket open until glibc is done with them:
        closing it under them would let a new file take its number and receive their datagrams.
        """
        reaped = self.wait(timeout)
        if self._in_flight:
            log.warning('%d batches still being sent after %.1f s; their socket closes once they are.',
                        len(self._in_flight), timeout)
            self._abandon()
        else:
            self.sock.close()
        return reaped

    def _abandon(self) -> None:
        # The slots keep the socket open until glibc is done with them; a later submit sweeps them.
        _abandoned.extend(self._in_flight)
        self._in_flight.clear()

    def __del__(self) -> None:
        # An emitter dropped with batches in flight: they still run, and are swept once done.
        try:
            if self._in_flight:
                self._abandon()
        except Exception:  # noqa: BLE001 - e.g. at interpreter teardown; the slots stay in _submitted
            pass
