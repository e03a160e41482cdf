"""The daemon: wires the UDP receiver, ingest queue, store, forwarders and HTTP server together."""
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..version import VERSION
from .address import Address, format_address, is_loopback
from .forward import ForwardSpec, build_forwarder
from .forward.base import Forwarder
from .ingest import Ingestor
from .sampling import SamplingService
from .stats import Counters
from .store import DEFAULT_MAX_TRACES, Store, default_db_path
from .udp import UDPReceiver
from .web import DaemonHTTPServer

log = logging.getLogger(__name__)

QUEUE_SIZE = 200000


class BindRefused(ValueError):
    """A non-loopback address was asked for without ``allow_remote``."""


@dataclass
class DaemonOptions:
    """Everything ``aws-like-sdk daemon`` can be told."""

    udp: Address = ('127.0.0.1', 2000)
    tcp: Address = ('127.0.0.1', 2000)
    db: Optional[str] = None
    max_traces: int = DEFAULT_MAX_TRACES
    max_age: Optional[float] = None
    sampling_rules: Optional[str] = None
    forward: List[ForwardSpec] = field(default_factory=list)
    allow_remote: bool = False


class Daemon:
    """A running local daemon; use :meth:`start` / :meth:`stop`, or as a context manager.

    Args:
        options: addresses, store and forwarding settings.

    Raises:
        BindRefused: for a non-loopback address without ``allow_remote``.
    """

    def __init__(self, options: DaemonOptions) -> None:
        for address in (options.udp, options.tcp):
            if not is_loopback(address[0]) and not options.allow_remote:
                raise BindRefused('%s is not a loopback address; pass --allow-remote to listen on it'
                                  % format_address(address))
        self.options = options
        self.counters = Counters()
        self.started = time.time()
        self.db_path = str(options.db or default_db_path())
        self.store = Store(self.db_path, max_traces=options.max_traces, max_age=options.max_age)
        self.sampling = SamplingService(options.sampling_rules)
        self.forwarders: List[Forwarder] = [build_forwarder(spec, self.counters) for spec in options.forward]
        self.queue: 'queue.Queue[Optional[bytes]]' = queue.Queue(QUEUE_SIZE)
        self.ingestor = Ingestor(self.store, self.queue, self.counters, self.forwarders)
        self.udp = UDPReceiver(options.udp, self.queue, self.counters)
        try:
            self.http = DaemonHTTPServer(options.tcp, self.store, self.sampling, self.counters, self.queue,
                                         self.stats, check_host=not options.allow_remote)
        except OSError:
            self.udp.stop()
            raise
        self._http_thread: Optional[threading.Thread] = None

    @property
    def udp_address(self) -> Address:
        """The bound UDP address (with the real port when 0 was asked for)."""
        return self.udp.address

    @property
    def tcp_address(self) -> Address:
        """The bound TCP (HTTP) address."""
        return self.http.server_address[:2]

    @property
    def viewer_url(self) -> str:
        """The viewer's URL."""
        host, port = self.tcp_address
        if host in ('0.0.0.0', '::'):
            host = '127.0.0.1'
        return 'http://%s/' % format_address((host, port))

    def start(self) -> 'Daemon':
        """Start every thread; returns self."""
        for forwarder in self.forwarders:
            forwarder.start()
        self.ingestor.start()
        self.udp.start()
        self._http_thread = threading.Thread(target=self.http.serve_forever, kwargs={'poll_interval': 0.2},
                                             name='aws-like-sdk-http', daemon=True)
        self._http_thread.start()
        log.info('listening: UDP %s, HTTP %s, store %s', format_address(self.udp_address),
                 format_address(self.tcp_address), self.db_path)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop receiving, store what is queued, flush forwarders (bounded by ``timeout``)."""
        self.udp.stop()
        self.http.shutdown()
        self.http.server_close()
        self.ingestor.stop(timeout)
        for forwarder in self.forwarders:
            forwarder.stop(timeout)
        self.store.close()

    def __enter__(self) -> 'Daemon':
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stats(self) -> Dict[str, Any]:
        """The body of ``/api/stats``: counters, store size, forwarder backlog, addresses."""
        traces, documents = self.store.counts()
        return {
            'version': VERSION,
            'pid': os.getpid(),
            'uptime': time.time() - self.started,
            'udp': format_address(self.udp_address),
            'tcp': format_address(self.tcp_address),
            'db': self.db_path,
            'queue': self.queue.qsize(),
            'counters': self.counters.snapshot(),
            'store': {'traces': traces, 'documents': documents, 'max_traces': self.store.max_traces},
            'forwarders': {f.name: {'pending': f.pending()} for f in self.forwarders},
        }
