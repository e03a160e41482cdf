"""Centralized sampling through the X-Ray daemon, with local rules as the fallback."""
import logging
import random
import threading
import time
from typing import Any, Callable, Dict, Mapping, Optional, Union

from ... import global_sdk_config
from ._fork import register_after_fork
from .connector import ServiceConnector
from .local.sampler import LocalSampler, RulesSource
from .reservoir import ReservoirDecision
from .rule_cache import RuleCache
from .rule_poller import RulePoller
from .sampling_rule import SamplingRule
from .target_poller import TargetPoller

log = logging.getLogger(__name__)

__all__ = ['DefaultSampler']

Decision = Union[bool, str]


class DefaultSampler:
    """Samples by the rules configured in X-Ray, fetched through the daemon; local rules are the fallback.

    Construction is cheap: no threads, sockets or files. The rule and target pollers start on the first
    :meth:`should_trace` (or an explicit :meth:`start`), restart lazily in a forked child, and stop with
    :meth:`stop`. While no centralized rule is available (daemon unreachable, nothing fetched yet, or the
    last good fetch older than an hour) the local rules decide.

    Args:
        clock: epoch-seconds clock for decisions, statistics and cache expiry; injectable for tests.
        rng: random source for rate draws and jitter; injectable for reproducible tests.
        connector: a preconfigured connector (tests, or a custom transport).
        rule_interval: seconds between rule fetches (default 300).
        target_interval: seconds between target polls (default 10).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, rng: Optional[random.Random] = None,
                 connector: Optional[ServiceConnector] = None, rule_interval: Optional[float] = None,
                 target_interval: Optional[float] = None) -> None:
        self._clock = clock
        self._random = rng if rng is not None else random.Random()
        self._connector = connector if connector is not None else ServiceConnector(clock=clock)
        self._cache = RuleCache()
        self._local_sampler = LocalSampler(rng=self._random, clock=clock)
        rule_kwargs: Dict[str, Any] = {} if rule_interval is None else {'interval': rule_interval}
        self._rule_poller = RulePoller(self._cache, self._connector, clock=clock, rng=self._random, **rule_kwargs)
        self._target_poller = TargetPoller(self._cache, self._rule_poller, self._connector, rng=self._random,
                                           interval=target_interval)
        self._origin: Optional[str] = None
        self._started = False
        self._stopped = False
        self._start_lock = threading.Lock()
        # True while decisions fall back to local rules; lets us log the switch once instead of per request.
        self._falling_back = False

    def start(self) -> None:
        """Start the rule and target pollers once; a no-op while the SDK is disabled."""
        if not global_sdk_config.sdk_enabled():
            return
        with self._start_lock:
            self._stopped = False
            if self._started:
                return
            register_after_fork(self)
            self._rule_poller.start()
            self._target_poller.start()
            self._started = True
            log.debug('Centralized sampling started against the daemon at %s.', self._connector.endpoint)

    def stop(self, timeout: Optional[float] = 2.0) -> bool:
        """Stop both pollers; later decisions use the cached rules and do not restart them.

        Call :meth:`start` to resume polling.

        Args:
            timeout: seconds to wait for each poller thread.

        Returns:
            True if both threads ended within the timeout.
        """
        with self._start_lock:
            self._stopped = True
            self._started = False
        rules_done = self._rule_poller.stop(timeout)
        targets_done = self._target_poller.stop(timeout)
        return rules_done and targets_done

    def should_trace(self, sampling_req: Optional[Mapping[str, Any]] = None) -> Decision:
        """Decide whether to sample a request.

        Args:
            sampling_req: optional ``host``, ``method``, ``path``, ``service`` and ``service_type`` of the
                request; ``service_type`` defaults to the configured origin. The mapping is not modified.

        Returns:
            The name of the centralized rule that sampled the request, False if it was not sampled, or the
            local sampler's bool when no centralized rule applies. Always False while the SDK is disabled.
        """
        if not global_sdk_config.sdk_enabled():
            return False
        if not self._started and not self._stopped:
            self.start()
        now = self._clock()
        request: Dict[str, Any] = dict(sampling_req) if sampling_req else {}
        if not request.get('service_type') and self._origin:
            request['service_type'] = self._origin
        rule = self._cache.get_matched_rule(request, now)
        if rule is not None:
            if self._falling_back:
                self._falling_back = False
                log.info('Centralized sampling rules are in effect again.')
            return self._process_matched_rule(rule, int(now))
        if not self._falling_back:
            self._falling_back = True
            log.info('No centralized sampling rule is in effect (%s); local sampling rules decide until '
                     'the daemon provides rules.', self._fallback_reason(now))
        return self._local_sampler.should_trace(sampling_req)

    def _fallback_reason(self, now: float) -> str:
        if self._cache.last_updated is None:
            return 'none fetched yet'
        if self._cache.is_expired(now):
            return 'the cached rules expired'
        return 'no rule matched and no Default rule'

    def _process_matched_rule(self, rule: SamplingRule, now: int) -> Decision:
        rule.increment_request_count()
        decision = rule.reservoir.borrow_or_take(now, rule.can_borrow)
        if decision is ReservoirDecision.BORROW:
            rule.increment_borrow_count()
        elif decision is ReservoirDecision.TAKE or self._random.random() <= rule.rate:
            rule.increment_sampled_count()
        else:
            return False
        return rule.name

    def load_local_rules(self, rules: RulesSource) -> None:
        """Set the fallback rules.

        Args:
            rules: a rules document (dict) or a path to a JSON file, version 1 or 2.

        Raises:
            InvalidSamplingManifestError: if the document is invalid; the previous rules stay.
        """
        self._local_sampler.load_local_rules(rules)

    def load_settings(self, daemon_config: Any, context: Any, origin: Optional[str] = None) -> None:
        """Point the connector at the daemon and remember the service type.

        Args:
            daemon_config: an object with ``tcp_ip`` and ``tcp_port``
                (:class:`~aws_like_sdk.core.daemon_config.DaemonConfig`).
            context: the recorder context (kept for compatibility).
            origin: the plugin origin, e.g. ``AWS::EC2::Instance``; matched against rules' ``ServiceType``.
        """
        endpoint_changed = (daemon_config.tcp_ip, int(daemon_config.tcp_port)) != self._endpoint()
        self._connector.setup_xray_client(daemon_config.tcp_ip, daemon_config.tcp_port,
                                          self._connector.xray_client)
        self._connector.context = context
        self._origin = origin
        if endpoint_changed and self._started:
            # Rules from the previous daemon should not linger for five minutes.
            self._rule_poller.wake_up()

    def _endpoint(self) -> tuple:
        ip, _, port = self._connector.endpoint.rpartition(':')
        return ip, int(port)

    @property
    def xray_client(self) -> Any:
        """The botocore-style client used instead of plain HTTP, or None (the default)."""
        return self._connector.xray_client

    @xray_client.setter
    def xray_client(self, value: Any) -> None:
        self._connector.xray_client = value

    @property
    def connector(self) -> ServiceConnector:
        """The daemon connector."""
        return self._connector

    @property
    def cache(self) -> RuleCache:
        """The centralized rule cache."""
        return self._cache

    @property
    def local_sampler(self) -> LocalSampler:
        """The fallback sampler."""
        return self._local_sampler

    @property
    def origin(self) -> Optional[str]:
        """The service type used when a request does not give one."""
        return self._origin

    @property
    def started(self) -> bool:
        """Whether the pollers were started in this process."""
        return self._started

    def _after_fork_in_child(self) -> None:
        # Threads are gone and locks may be held by threads that no longer exist: rebuild both, keep the
        # rules (the child samples by them at once) and start polling lazily on the next decision.
        self._start_lock = threading.Lock()
        self._started = False
        self._connector._after_fork_in_child()
        self._cache._after_fork_in_child()
        self._rule_poller._after_fork_in_child()
        self._target_poller._after_fork_in_child()
        self._local_sampler._after_fork_in_child()
