"""A forwarder: a bounded buffer drained in batches by one thread, retrying with backoff.

Ingestion only ever calls :meth:`Forwarder.offer`, which appends under a lock and never
waits: when the backend is down the buffer fills, the oldest documents are dropped and
counted, and the daemon keeps storing locally.
"""
import collections
import logging
import random
import threading
import time
from typing import Any, Deque, List, Optional

from ..documents import Document
from ..stats import Counters, RateLimitedLog

log = logging.getLogger(__name__)


class RetryableError(Exception):
    """The batch may succeed later (network error, throttling, 5xx)."""


class PermanentError(Exception):
    """The backend refused the batch for good; retrying would not help."""


class Forwarder:
    """Base class; subclasses implement :meth:`convert` and :meth:`send`.

    Args:
        name: the counter prefix, e.g. ``xray`` or ``otlp``.
        counters: where ``forward.<name>.*`` counts go.
        capacity: documents kept while the backend is unreachable.
        batch_size: most documents per send.
        idle: seconds a partial batch waits for company before it is sent.
        max_backoff: longest pause between retries, in seconds.
    """

    def __init__(self, name: str, counters: Counters, capacity: int = 10000, batch_size: int = 50,
                 idle: float = 1.0, max_backoff: float = 30.0) -> None:
        self.name = name
        self._counters = counters
        self._capacity = capacity
        self._batch_size = batch_size
        self._idle = idle
        self._max_backoff = max_backoff
        self._buffer: Deque[Any] = collections.deque()
        self._first_waiting: Optional[float] = None
        self._cond = threading.Condition()
        self._stopping = False
        self._deadline = float('inf')
        self._thread: Optional[threading.Thread] = None
        self._problems = RateLimitedLog(log)

    def _count(self, what: str, amount: int = 1) -> None:
        self._counters.add('forward.%s.%s' % (self.name, what), amount)

    # -- subclass hooks ---------------------------------------------------------------

    def convert(self, raw: bytes, document: Optional[Document]) -> Any:
        """Turn an accepted datagram body into a buffer item, or None to skip it."""
        raise NotImplementedError

    def send(self, batch: List[Any]) -> int:
        """Deliver one batch.

        Returns:
            How many items the backend rejected (counted, not retried).

        Raises:
            RetryableError: to retry the whole batch later.
            PermanentError: to drop the whole batch.
        """
        raise NotImplementedError

    # -- ingestion side ---------------------------------------------------------------

    def offer(self, raw: bytes, document: Optional[Document]) -> None:
        """Queue one document without blocking; drops the oldest when the buffer is full."""
        try:
            item = self.convert(raw, document)
        except Exception:  # a conversion bug must not stop ingestion
            log.exception('%s forwarder could not convert a document', self.name)
            self._count('dropped')
            return
        if item is None:
            return
        with self._cond:
            self._buffer.append(item)
            if self._first_waiting is None:
                self._first_waiting = time.monotonic()
            overflow = len(self._buffer) - self._capacity
            for _ in range(max(0, overflow)):
                self._buffer.popleft()
            # Wake the sender for a full batch, or for the first item so it starts the idle clock.
            if len(self._buffer) >= self._batch_size or len(self._buffer) == 1:
                self._cond.notify()
        if overflow > 0:
            self._count('dropped', overflow)

    # -- worker -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sending thread."""
        self._thread = threading.Thread(target=self._run, name='aws-like-sdk-forward-%s' % self.name,
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Flush what can be sent within ``timeout`` seconds, then stop; the rest is counted dropped."""
        with self._cond:
            self._stopping = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout + 1.0)
        with self._cond:
            left = len(self._buffer)
            self._buffer.clear()
        if left:
            self._count('dropped', left)

    def pending(self) -> int:
        """Documents waiting in the buffer."""
        with self._cond:
            return len(self._buffer)

    def _next_batch(self) -> List[Any]:
        with self._cond:
            while True:
                if self._stopping:
                    if not self._buffer or time.monotonic() >= self._deadline:
                        return []
                    break
                if len(self._buffer) >= self._batch_size:
                    break
                if self._buffer:
                    waited = time.monotonic() - (self._first_waiting or time.monotonic())
                    if waited >= self._idle:
                        break
                    self._cond.wait(self._idle - waited)
                else:
                    self._cond.wait()
            batch = [self._buffer.popleft() for _ in range(min(self._batch_size, len(self._buffer)))]
            self._first_waiting = time.monotonic() if self._buffer else None
            return batch

    def _requeue(self, batch: List[Any]) -> None:
        with self._cond:
            self._buffer.extendleft(reversed(batch))
            overflow = len(self._buffer) - self._capacity
            for _ in range(max(0, overflow)):
                self._buffer.popleft()
            if self._first_waiting is None:
                self._first_waiting = time.monotonic()
        if overflow > 0:
            self._count('dropped', overflow)

    def _pause(self, seconds: float) -> bool:
        """Sleep unless stopping; True when the pause ran to its end."""
        with self._cond:
            end = time.monotonic() + seconds
            if self._stopping:
                end = min(end, self._deadline)
            while not self._stopping and time.monotonic() < end:
                self._cond.wait(end - time.monotonic())
            return time.monotonic() < self._deadline

    def _run(self) -> None:
        backoff = 0.0
        while True:
            batch = self._next_batch()
            if not batch:
                return
            try:
                rejected = self.send(batch)
            except RetryableError as exc:
                self._count('failures')
                backoff = min(self._max_backoff, backoff * 2 if backoff else 0.5)
                self._problems.warning('%s forwarding failed, retrying in %.1f s: %s', self.name, backoff, exc)
                self._requeue(batch)
                self._count('retries')
                if not self._pause(backoff * random.uniform(0.8, 1.2)):
                    return
                continue
            except Exception as exc:  # PermanentError, or a bug: never kill the thread
                self._count('failures')
                self._count('rejected', len(batch))
                self._problems.warning('%s forwarding dropped %d documents: %s', self.name, len(batch), exc)
                continue
            backoff = 0.0
            self._count('sent', len(batch) - rejected)
            if rejected:
                self._count('rejected', rejected)
