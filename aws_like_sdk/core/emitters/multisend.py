"""Send a batch of UDP datagrams in one ``sendmmsg(2)`` call, with the GIL released.

Why: on a busy single-threaded process a sender thread that calls ``socket.sendto`` once per
datagram must win the GIL back after every call, which can take a whole switch interval (5 ms).
One foreign call per batch releases the GIL once, so a background sender costs the application
thread almost nothing. Only Linux has ``sendmmsg``; elsewhere :func:`batch_sender_for` returns None
and callers fall back to ``sendto``.
"""
import array
import ctypes
import errno
import itertools
import logging
import select
import socket
import struct
import time
from typing import Callable, List, Optional, Sequence, Tuple

from .libc import libc_function

log = logging.getLogger(__name__)

# Datagrams per system call, and what one call may charge the receiver: one burst fits a receiver's
# default-sized buffer (Linux's net.core.rmem_default, 212992 bytes) even when it is not reading, while a
# batch is still large enough that the sender rarely needs the GIL (each call releases it and has to win
# it back from a busy request thread).
MAX_BATCH = 256
MAX_BATCH_FOOTPRINT = 212992
# The kernel charges a queued datagram the true size of its buffer, not its length: the data buffer is
# the length plus headers and shared info, rounded up to a power of two, plus the sk_buff itself. So a
# 541-byte segment costs 1280 bytes, and 128 KiB of them (242) overflowed an idle receiver, which held
# 166. Measured through SO_MEMINFO on Linux 6.x for every length to 65507: this estimate is never below
# the charge, and about 5% above it for typical segments.
_DATA_OVERHEAD = 384
_BUFFER_OVERHEAD = 320
# A batch that fills the socket's send buffer (a daemon across a real link, whose queue drains at the
# link's pace) waits for room, up to this long per batch, instead of dropping the rest of the batch.
WRITABLE_WAIT_SECONDS = 0.5
_WOULD_BLOCK = frozenset((errno.EAGAIN, errno.EWOULDBLOCK))


def footprints(payloads: Sequence[bytes]) -> List[int]:
    """The receive-buffer bytes the kernel will charge for each payload (an upper estimate)."""
    # next power of two >= len + _DATA_OVERHEAD, plus _BUFFER_OVERHEAD; built from C-level maps because
    # the sender computes it per datagram while holding the GIL.
    rounded = map((1).__lshift__, map(int.bit_length, map((_DATA_OVERHEAD - 1).__add__, map(len, payloads))))
    return list(map(_BUFFER_OVERHEAD.__add__, rounded))


class _IOVec(ctypes.Structure):
    _fields_ = [('base', ctypes.c_void_p), ('length', ctypes.c_size_t)]


# An iovec is two machine words (pointer, size_t): the array type code of that width.
_WORD = next(code for code in ('L', 'Q') if array.array(code).itemsize == ctypes.sizeof(ctypes.c_void_p))
_WORD_SIZE = ctypes.sizeof(ctypes.c_void_p)
assert ctypes.sizeof(_IOVec) == 2 * _WORD_SIZE


class _MsgHeader(ctypes.Structure):
    _fields_ = [('name', ctypes.c_void_p), ('namelen', ctypes.c_uint32),
                ('iov', ctypes.POINTER(_IOVec)), ('iovlen', ctypes.c_size_t),
                ('control', ctypes.c_void_p), ('controllen', ctypes.c_size_t), ('flags', ctypes.c_int)]


class _MMsgHeader(ctypes.Structure):
    _fields_ = [('hdr', _MsgHeader), ('sent_bytes', ctypes.c_uint)]


_MESSAGE_SIZE = ctypes.sizeof(_MMsgHeader)


def _load_sendmmsg() -> Optional[Callable]:
    return libc_function('sendmmsg', [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int])


_sendmmsg: Optional[Callable] = None
_loaded = False


def available() -> bool:
    """True when this platform can send a batch in one call (loads libc on first use)."""
    global _sendmmsg, _loaded
    if not _loaded:
        _sendmmsg = _load_sendmmsg()
        _loaded = True
    return _sendmmsg is not None


def _sockaddr_in(target: Tuple[str, int]) -> bytes:
    # struct sockaddr_in: family in host order, port and address in network order, 8 bytes of zero.
    return struct.pack('=H', socket.AF_INET) + struct.pack('!H', target[1]) + socket.inet_aton(target[0]) + bytes(8)


class BatchSender:
    """Sends lists of payloads from one IPv4 UDP socket to one address with ``sendmmsg``.

    Not thread-safe: one sender thread owns an instance.
    """

    def __init__(self, sock: socket.socket, target: Tuple[str, int]) -> None:
        self.sock = sock
        self.target = target
        self._fd = sock.fileno()
        self._address = ctypes.create_string_buffer(_sockaddr_in(target), 16)
        self._iovecs = (_IOVec * MAX_BATCH)()
        self._iovec_bytes = memoryview(self._iovecs).cast('B')
        self._messages = (_MMsgHeader * MAX_BATCH)()
        address = ctypes.cast(self._address, ctypes.c_void_p)
        for index in range(MAX_BATCH):
            header = self._messages[index].hdr
            header.name = address
            header.namelen = 16
            header.iov = ctypes.pointer(self._iovecs[index])
            header.iovlen = 1

    def send(self, payloads: Sequence[bytes]) -> Tuple[int, List[Tuple[int, int]]]:
        """Send up to :data:`MAX_BATCH` payloads; returns (datagrams sent, [(index, errno), ...]).

        A payload the kernel refuses is skipped and reported, and sending goes on with the next,
        so one bad datagram costs only itself. When the send buffer is full, the call waits for room
        (GIL released) for up to :data:`WRITABLE_WAIT_SECONDS` in all before dropping what is left.
        """
        count = len(payloads)
        # One contiguous copy: a single address lookup instead of one per payload.
        blob = b''.join(payloads)
        base = ctypes.cast(ctypes.c_char_p(blob), ctypes.c_void_p).value or 0
        # Fill every (base, length) pair with one copy: a ctypes attribute write per field would
        # cost more than the rest of the batch.
        lengths = list(map(len, payloads))
        starts = itertools.accumulate(lengths[:-1], initial=base)
        fields = array.array(_WORD, itertools.chain.from_iterable(zip(starts, lengths)))
        # A buffer copy, not ctypes.memmove: a foreign call releases the GIL and would have to win
        # it back from a busy request thread once more per batch.
        self._iovec_bytes[:2 * _WORD_SIZE * count] = memoryview(fields).cast('B')
        sent = 0
        failures: List[Tuple[int, int]] = []
        start = 0
        first = ctypes.addressof(self._messages)
        wait_until = None
        while start < count:
            done = _sendmmsg(self._fd, first + start * _MESSAGE_SIZE, count - start, 0)
            if done > 0:
                sent += done
                start += done
                continue
            error = ctypes.get_errno()
            if error in _WOULD_BLOCK:
                if wait_until is None:
                    wait_until = time.monotonic() + WRITABLE_WAIT_SECONDS
                if self._wait_writable(wait_until):
                    continue
            failures.append((start, error))
            start += 1
        del blob  # kept alive until here: the kernel read from it
        return sent, failures

    def _wait_writable(self, wait_until: float) -> bool:
        remaining = wait_until - time.monotonic()
        if remaining <= 0:
            return False
        poller = select.poll()
        poller.register(self._fd, select.POLLOUT)
        try:
            return bool(poller.poll(remaining * 1000))
        except OSError:
            return False


def batch_sender_for(sock: socket.socket, target: Tuple[str, int]) -> Optional[BatchSender]:
    """A :class:`BatchSender` for an IPv4 ``target``, or None where batching is unavailable."""
    if sock.family != socket.AF_INET or not available():
        return None
    try:
        return BatchSender(sock, target)
    except (OSError, ValueError, TypeError) as exc:  # e.g. a non-numeric address
        log.debug('Batched sending unavailable (%s); sending one datagram at a time.', exc)
        return None
