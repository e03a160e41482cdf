"""Send finished entities to the daemon as UDP datagrams. Never raises into the application."""
import atexit
import collections
import logging
import os
import socket
import threading
import time
import weakref
from typing import Optional, Tuple

from ..daemon_config import DEFAULT_ADDRESS, DaemonConfig
from ..exceptions.exceptions import InvalidDaemonAddressException
from .encoding import PROTOCOL_DELIMITER, PROTOCOL_HEADER, to_datagrams  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

DEFAULT_DAEMON_ADDRESS = DEFAULT_ADDRESS

_emitters: 'weakref.WeakSet[UDPEmitter]' = weakref.WeakSet()


# Upper bound on documents waiting for the sender thread. When the application outpaces the
# sender, the calling thread sends the document itself: memory stays bounded, nothing is dropped,
# and a process producing faster than it can send is slowed down rather than losing traces.
DEFAULT_MAX_QUEUE = 256
_SENDER_IDLE_WAIT = 0.5
# Intermittent failures (EAGAIN under a burst) alternate with successes; re-arming the once-per-cause
# error on every success would log an error (and a recovery) per dropped datagram.
_FAILURE_LOG_REARM_SECONDS = 60.0
_EXIT_FLUSH_SECONDS = 2.0


def _reset_locks_in_child() -> None:
    # A lock another thread held at fork() stays held forever in the child, and the first send there
    # takes it to open the child's own socket: replace it. The socket is left for the parent; the
    # child opens its own on first send (cheaper than comparing os.getpid() on every send). Queued
    # documents belong to the parent, which sends them; the child starts its own sender on demand.
    for emitter in list(_emitters):
        emitter._lock = threading.Lock()
        emitter._socket = None
        emitter._queue.clear()
        emitter._wakeup = threading.Event()
        emitter._thread = None
        emitter._sleeping = False
        emitter._busy = False


_exit_hook_registered = False


def _background_by_default() -> bool:
    # Measured (benchmarks/core_bench.py): with the GIL, a sender thread costs more in handoffs than
    # the sendto it takes off the request, so throughput is better sending inline. Background sending
    # stays available for latency-sensitive applications with spare cores.
    return False


def _flush_all_at_exit() -> None:
    deadline = time.monotonic() + _EXIT_FLUSH_SECONDS
    for emitter in list(_emitters):
        emitter.flush(max(0.0, deadline - time.monotonic()))


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_reset_locks_in_child)


class UDPEmitter:
    """One datagram per document: ``{"format":"json","version":1}\\n`` + compact JSON.

    The socket is created on first send (nothing happens at import) and again after ``fork()``; the
    address is resolved once. Documents over the datagram limit are split or shrunk, never lost.
    A failing send is logged once per cause and counted in ``dropped``.

    Sending is inline by default. With ``background=True`` serialising and sending happen on one
    background thread, started on the first send, so the request that ended a segment does not wait
    for the socket. Documents then wait in a bounded queue; when it is full the caller sends the
    document itself (backpressure, never loss). The queue is flushed at interpreter exit, and
    :meth:`flush` waits for it on demand. Do not enable it in Lambda: the process may be frozen as soon
    as the handler returns.

    Args:
        daemon_address: ``host:port`` or ``tcp:host:port udp:host:port``;
            ``AWS_XRAY_DAEMON_ADDRESS`` wins.
        background: send from a background thread (default False; see above).
        max_queue: documents allowed to wait for the background thread; past it the caller sends.
    """

    def __init__(self, daemon_address: str = DEFAULT_DAEMON_ADDRESS, background: Optional[bool] = None,
                 max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        if background is None:
            background = _background_by_default()
        self._background = background
        self._max_queue = max_queue
        self._queue: 'collections.deque' = collections.deque()
        self._wakeup = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._sleeping = False
        self._busy = False
        self._lock = threading.Lock()
        _emitters.add(self)
        self._socket: Optional[socket.socket] = None
        self._socket_pid = 0
        self._target: Optional[Tuple[str, int]] = None
        self._failures_logged: set = set()
        self._failure_logged_at = 0.0
        self.sent = 0
        self.dropped = 0
        try:
            config = DaemonConfig(daemon_address)
        except InvalidDaemonAddressException as exc:
            # Never fail at import time; configure(daemon_address=...) raises for a bad value.
            log.error('%s Using %s until configure() sets a valid address.', exc, DEFAULT_ADDRESS)
            self._ip, self._port = '127.0.0.1', 2000
            return
        self._ip, self._port = config.udp_ip, config.udp_port

    def send_entity(self, entity) -> None:
        """Send ``entity`` (queued for the sender thread in background mode); never raises."""
        if not self._background:
            self._emit(entity)
            return
        queue = self._queue
        if len(queue) >= self._max_queue:
            self._emit(entity)
            return
        queue.append(entity)
        if self._thread is None:
            self._start_sender()
        elif self._sleeping:
            self._wakeup.set()

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until every queued document has been sent (or dropped); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue or self._busy:
            if self._thread is None or not self._thread.is_alive():
                # No sender (e.g. stopped at shutdown): send what is left from here.
                self._drain()
                break
            if time.monotonic() >= deadline:
                return False
            self._wakeup.set()
            time.sleep(0.0005)
        return True

    def _start_sender(self) -> None:
        global _exit_hook_registered
        with self._lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._sender_loop, name='aws_like_sdk-udp-emitter', daemon=True)
            self._thread = thread
            if not _exit_hook_registered:
                _exit_hook_registered = True
                atexit.register(_flush_all_at_exit)
        thread.start()

    def _sender_loop(self) -> None:
        queue = self._queue
        while True:
            self._busy = True
            try:
                entity = queue.popleft()
            except IndexError:
                self._busy = False
                # Announce the sleep, then look once more: a producer that appended before seeing
                # the flag is caught by this check, one that appended after it sets the event.
                self._sleeping = True
                if not queue:
                    self._wakeup.wait(_SENDER_IDLE_WAIT)
                    self._wakeup.clear()
                self._sleeping = False
                continue
            try:
                self._emit(entity)
            finally:
                self._busy = False

    def _drain(self) -> None:
        queue = self._queue
        while True:
            try:
                entity = queue.popleft()
            except IndexError:
                return
            self._emit(entity)

    def _emit(self, entity) -> None:
        """Serialise ``entity`` and send it; errors are logged and the document dropped."""
        try:
            payloads = to_datagrams(entity.to_dict())
        except Exception:  # noqa: BLE001 - a bad entity must never break the application
            log.exception('Failed to serialise entity %r; dropped.', getattr(entity, 'name', None))
            self.dropped += 1
            return
        for payload in payloads:
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
        self.sent += 1
        if self._failures_logged and time.monotonic() - self._failure_logged_at >= _FAILURE_LOG_REARM_SECONDS:
            self._failures_logged.clear()
            log.info('Sending to the daemon at %s:%s works again.', self._ip, self._port)

    def _count_failure(self, exc: BaseException) -> None:
        self.dropped += 1
        cause = (type(exc).__name__, getattr(exc, 'errno', None))
        if cause not in self._failures_logged:
            self._failures_logged.add(cause)
            self._failure_logged_at = time.monotonic()
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
                info = socket.getaddrinfo(self._ip, self._port, socket.AF_INET, socket.SOCK_DGRAM)
                self._target = info[0][4]
            return self._socket, self._target

    def close(self) -> None:
        """Close the socket; the next send opens a new one."""
        with self._lock:
            if self._socket is not None:
                self._socket.close()
            self._socket = None
