"""The writer thread: drain the ingest queue, parse, store in batches, offer to forwarders."""
import logging
import queue
import threading
import time
from typing import List, Optional, Sequence, Tuple

from .documents import Document, InvalidDocument, parse_document
from .forward.base import Forwarder
from .stats import Counters, RateLimitedLog
from .store import Store

log = logging.getLogger(__name__)

MAX_BATCH = 1000
#: How long the writer waits to fill a batch once it has one document.
BATCH_WINDOW = 0.05
RETENTION_EVERY = 5.0


class Ingestor:
    """Owns the store's write side.

    Args:
        store: the trace store.
        source: queue of datagram bodies (bytes); ``None`` is the stop marker.
        counters: ``stored``, ``invalid.<reason>`` land here.
        forwarders: each accepted body is offered to every forwarder.
    """

    def __init__(self, store: Store, source: 'queue.Queue[Optional[bytes]]', counters: Counters,
                 forwarders: Sequence[Forwarder] = ()) -> None:
        self._store = store
        self._source = source
        self._counters = counters
        self._forwarders = list(forwarders)
        self._bad = RateLimitedLog(log)
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._run, name='aws-like-sdk-store', daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Store what is queued (within ``timeout``) and stop."""
        self._source.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def _drain(self) -> Tuple[List[bytes], bool]:
        first = self._source.get()
        if first is None:
            return [], True
        bodies = [first]
        deadline = time.monotonic() + BATCH_WINDOW
        while len(bodies) < MAX_BATCH:
            remaining = deadline - time.monotonic()
            try:
                item = self._source.get_nowait() if remaining <= 0 else self._source.get(timeout=remaining)
            except queue.Empty:
                break
            if item is None:
                return bodies, True
            bodies.append(item)
        return bodies, False

    def _run(self) -> None:
        last_retention = time.monotonic()
        while True:
            bodies, stopping = self._drain()
            if bodies:
                self.process(bodies)
            if time.monotonic() - last_retention >= RETENTION_EVERY:
                last_retention = time.monotonic()
                self._safe(self._store.enforce_retention)
            if stopping:
                return

    def process(self, bodies: List[bytes]) -> int:
        """Parse, store and forward one batch; returns the number of documents stored."""
        documents: List[Document] = []
        for body in bodies:
            document: Optional[Document] = None
            try:
                document = parse_document(body)
                documents.append(document)
            except InvalidDocument as exc:
                self._counters.add('invalid.%s' % exc.reason)
                self._bad.warning('document not stored (%s): %s: %r', exc.reason, exc, body[:80])
            for forwarder in self._forwarders:
                forwarder.offer(body, document)
        stored = self._safe(self._store.write_batch, documents) or 0
        self._counters.add('stored', stored)
        if stored < len(documents):
            # in-progress copies of finished entities, or traces over the size limit
            self._counters.add('skipped', len(documents) - stored)
        return stored

    def _safe(self, func, *args):
        # A disk error or a locked database must not kill the writer: log and carry on.
        try:
            return func(*args)
        except Exception:
            log.exception('store operation failed')
            self._counters.add('store_errors')
            return None
