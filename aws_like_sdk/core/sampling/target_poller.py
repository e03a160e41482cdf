"""Background report of rule statistics and fetch of sampling targets."""
import logging
import random
from typing import List, Optional, Sequence

from ._poller import PollerThread
from .connector import SamplingConnectorError, ServiceConnector
from .rule_cache import RuleCache
from .rule_poller import RulePoller
from .sampling_rule import SamplingRule

log = logging.getLogger(__name__)

__all__ = ['TargetPoller']

THREAD_NAME = 'aws_like_sdk-sampling-target-poller'


class TargetPoller:
    """Every 10 s (plus up to 0.1 s jitter) reports statistics of matched rules and applies new targets.

    Args:
        cache: the rule cache whose rules are reported and updated.
        rule_poller: woken when X-Ray says rules changed after the cache was filled.
        connector: the daemon connector.
        rng: random source for the jitter.
        interval: seconds between polls.
    """

    interval = 10

    def __init__(self, cache: RuleCache, rule_poller: RulePoller, connector: ServiceConnector, *,
                 rng: Optional[random.Random] = None, interval: Optional[float] = None) -> None:
        self._cache = cache
        self._rule_poller = rule_poller
        self._connector = connector
        self._random = rng if rng is not None else random.Random()
        if interval is not None:
            self.interval = interval
        self._thread = PollerThread(THREAD_NAME, self._step, self._delay)

    def start(self) -> None:
        """Start the poller thread (first poll after one interval); no-op if it is running."""
        if self._thread.start():
            log.debug('Started %s.', THREAD_NAME)

    def stop(self, timeout: Optional[float] = None) -> bool:
        """Stop the poller thread, waiting up to ``timeout`` seconds. Returns True if it ended."""
        return self._thread.stop(timeout)

    def poll(self) -> bool:
        """Report and fetch targets once.

        Returns:
            True if targets were fetched (False when nothing was due or the daemon failed).
        """
        candidates = self._get_candidates(self._cache.rules)
        if not candidates:
            return False
        try:
            targets, last_modified = self._connector.fetch_sampling_target(candidates)
        except SamplingConnectorError:
            return False  # logged once per outage by the connector
        self._cache.load_targets(targets)
        last_updated = self._cache.last_updated
        if last_updated is not None and last_modified > last_updated:
            log.debug('Sampling rules changed at %d; refreshing them now.', last_modified)
            self._rule_poller.wake_up()
        return True

    @staticmethod
    def _get_candidates(all_rules: Sequence[SamplingRule]) -> List[SamplingRule]:
        # Only rules that saw traffic are reported, each at the interval X-Ray asked for.
        return [rule for rule in all_rules if rule.ever_matched() and rule.time_to_report()]

    def _delay(self) -> float:
        return self.interval + self._random.random() * 0.1

    def _step(self) -> float:
        self.poll()
        return self._delay()

    @property
    def running(self) -> bool:
        """Whether the poller thread is alive."""
        return self._thread.alive

    def _after_fork_in_child(self) -> None:
        self._thread._after_fork_in_child()
