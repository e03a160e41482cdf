"""The UDP receiver: one socket, 64 KiB reads, header checks, hand-off to the ingest queue."""
import logging
import queue
import socket
import threading
from typing import Optional

from .address import Address
from .protocol import BUFFER_SIZE, OVERSIZE, split_datagram
from .stats import Counters, RateLimitedLog

log = logging.getLogger(__name__)

#: Ask the kernel for a deep receive queue so bursts survive while the writer commits.
RECEIVE_BUFFER_BYTES = 8 * 1024 * 1024


class UDPReceiver:
    """Receives datagrams on ``address`` and puts accepted bodies on ``sink``.

    Args:
        address: where to bind (port 0 picks a free port; see :attr:`address`).
        sink: the ingest queue; when it is full the datagram is dropped and counted.
        counters: ``received``, ``rejected.<reason>`` and ``dropped.queue_full`` land here.
    """

    def __init__(self, address: Address, sink: 'queue.Queue[bytes]', counters: Counters) -> None:
        family = socket.AF_INET6 if ':' in address[0] else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        for option in (getattr(socket, 'SO_RCVBUFFORCE', None), socket.SO_RCVBUF):
            if option is None:
                continue
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, option, RECEIVE_BUFFER_BYTES)
                break
            except OSError:
                continue  # SO_RCVBUFFORCE needs CAP_NET_ADMIN; SO_RCVBUF is capped by rmem_max
        self._sock.bind(address)
        self._sock.settimeout(0.5)
        self.address: Address = self._sock.getsockname()[:2]
        self._sink = sink
        self._counters = counters
        self._bad = RateLimitedLog(log)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        """Start the receiving thread."""
        self._thread = threading.Thread(target=self._run, name='aws-like-sdk-udp', daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop receiving and close the socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        self._sock.close()

    def _run(self) -> None:
        # One extra byte tells an oversize datagram (truncated by the kernel) from a full one.
        size = BUFFER_SIZE + 1
        recv = self._sock.recvfrom
        while not self._stop.is_set():
            try:
                data, peer = recv(size)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                log.exception('UDP receive failed')
                continue
            self.handle(data, peer)

    def handle(self, data: bytes, peer: object = None) -> None:
        """Check one datagram and queue its body."""
        self._counters.add('received')
        if len(data) > BUFFER_SIZE:
            self._reject(OVERSIZE, data, peer)
            return
        body, reason = split_datagram(data)
        if body is None:
            self._reject(reason, data, peer)
            return
        try:
            self._sink.put_nowait(body)
        except queue.Full:
            self._counters.add('dropped.queue_full')
            self._bad.warning('ingest queue full: segment dropped (the store cannot keep up)')

    def _reject(self, reason: str, data: bytes, peer: object) -> None:
        self._counters.add('rejected.%s' % reason)
        self._bad.warning('rejected datagram from %s (%s): %r', peer, reason, data[:80])
