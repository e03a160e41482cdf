"""Background refresh of the centralized sampling rules."""
import logging
import random
import time
from typing import Callable, Optional

from ._poller import PollerThread
from .connector import SamplingConnectorError, ServiceConnector
from .rule_cache import RuleCache

log = logging.getLogger(__name__)

__all__ = ['RulePoller', 'DEFAULT_INTERVAL']

DEFAULT_INTERVAL = 300
"""Seconds between rule fetches (plus up to :data:`JITTER` seconds)."""

JITTER = 5.0
"""Upper bound of the random delay added to each interval so a fleet does not poll in step."""

RETRY_INTERVAL = 5.0
"""First retry delay after a failed fetch; doubles per failure up to DEFAULT_INTERVAL."""

THREAD_NAME = 'aws_like_sdk-sampling-rule-poller'


class RulePoller:
    """Fetches rules at start, then every :data:`DEFAULT_INTERVAL` seconds plus jitter.

    Upstream waits the full interval after a failed fetch, so an application that starts before its
    daemon samples by local rules for five minutes. Here failed fetches are retried after 5, 10, 20, ...
    seconds, capped at the normal interval.

    Args:
        cache: the cache to refresh.
        connector: the daemon connector.
        clock: epoch-seconds clock stamped on the cache; injectable for tests.
        rng: random source for the jitter.
        interval: seconds between successful fetches.
    """

    def __init__(self, cache: RuleCache, connector: ServiceConnector, *, clock: Callable[[], float] = time.time,
                 rng: Optional[random.Random] = None, interval: float = DEFAULT_INTERVAL) -> None:
        self._cache = cache
        self._connector = connector
        self._clock = clock
        self._random = rng if rng is not None else random.Random()
        self._interval = interval
        self._failures = 0
        self._thread = PollerThread(THREAD_NAME, self._step, lambda: 0.0)

    def start(self) -> None:
        """Start the poller thread (first fetch immediately); no-op if it is running."""
        if self._thread.start():
            log.debug('Started %s.', THREAD_NAME)

    def stop(self, timeout: Optional[float] = None) -> bool:
        """Stop the poller thread, waiting up to ``timeout`` seconds. Returns True if it ended."""
        return self._thread.stop(timeout)

    def wake_up(self) -> None:
        """Fetch rules now (called when X-Ray reports a rule change)."""
        self._thread.wake_up()

    def refresh(self) -> bool:
        """Fetch rules once and load them into the cache.

        Returns:
            True if rules were fetched and loaded.
        """
        now = self._clock()
        try:
            rules = self._connector.fetch_sampling_rules()
        except SamplingConnectorError:
            # The connector logs the outage once; repeating it here would be the noise users complained of.
            self._failures += 1
            return False
        self._failures = 0
        if not rules:
            log.debug('The daemon returned no usable sampling rules; keeping the cached ones.')
            return False
        self._cache.load_rules(rules)
        self._cache.last_updated = now
        log.debug('Loaded %d centralized sampling rule(s).', len(rules))
        return True

    def next_delay(self) -> float:
        """Seconds until the next fetch, given the outcome of the last one."""
        if self._failures:
            return min(float(self._interval), RETRY_INTERVAL * 2 ** (self._failures - 1))
        return self._interval + self._random.random() * JITTER

    def _step(self) -> float:
        self.refresh()
        return self.next_delay()

    @property
    def running(self) -> bool:
        """Whether the poller thread is alive."""
        return self._thread.alive

    def _after_fork_in_child(self) -> None:
        self._thread._after_fork_in_child()
        self._failures = 0
