"""A centralized sampling rule from X-Ray, with its statistics."""
import threading
from typing import Any, Dict, Mapping, Optional

from ..utils.search_pattern import wildcard_match
from .reservoir import Reservoir

__all__ = ['SamplingRule']

DEFAULT_RULE_NAME = 'Default'


class SamplingRule:
    """A rule fetched from ``GetSamplingRules`` plus the counters reported to ``SamplingTargets``.

    Counters and rate changes are guarded by a lock so request threads and the target poller can share it.

    Args:
        name: the rule name (``Default`` for the catch-all rule).
        priority: lower values are tried first.
        rate: fraction sampled once the reservoir says no.
        reservoir_size: the rule's reservoir; non-zero lets the client borrow before it has a quota.
        host: Host header pattern.
        method: HTTP method pattern.
        path: URL path pattern.
        service: service (segment) name pattern.
        service_type: origin pattern, e.g. ``AWS::EC2::Instance``.
    """

    def __init__(self, name: str, priority: int, rate: float, reservoir_size: int,
                 host: Optional[str] = None, method: Optional[str] = None, path: Optional[str] = None,
                 service: Optional[str] = None, service_type: Optional[str] = None) -> None:
        self._name, self._priority = name, priority
        self._rate, self._can_borrow = rate, bool(reservoir_size)
        # What a request must match (None matches anything).
        self._host, self._method, self._path = host, method, path
        self._service, self._service_type = service, service_type
        self._reservoir = Reservoir()
        self._lock = threading.Lock()
        self._request_count = 0
        self._borrow_count = 0
        self._sampled_count = 0

    def match(self, sampling_req: Optional[Mapping[str, Any]]) -> bool:
        """Return whether a request matches every pattern of the rule.

        Args:
            sampling_req: ``host``, ``method``, ``path``, ``service`` and ``service_type``; a missing or
                empty attribute counts as a match. ``None`` never matches.
        """
        if sampling_req is None:
            return False
        host = sampling_req.get('host')
        method = sampling_req.get('method')
        path = sampling_req.get('path')
        service = sampling_req.get('service')
        service_type = sampling_req.get('service_type')
        return ((not host or wildcard_match(self._host, host))
                and (not method or wildcard_match(self._method, method))
                and (not path or wildcard_match(self._path, path))
                and (not service or wildcard_match(self._service, service))
                and (not service_type or wildcard_match(self._service_type, service_type)))

    def is_default(self) -> bool:
        """Return whether this is X-Ray's catch-all ``Default`` rule."""
        return self._name == DEFAULT_RULE_NAME

    def snapshot_statistics(self) -> Dict[str, int]:
        """Return the counters since the last snapshot and reset them.

        Returns:
            ``{'request_count': n, 'borrow_count': n, 'sampled_count': n}``.
        """
        with self._lock:
            stats = {'request_count': self._request_count,
                     'borrow_count': self._borrow_count,
                     'sampled_count': self._sampled_count}
            self._request_count = self._borrow_count = self._sampled_count = 0
        return stats

    def merge(self, rule: 'SamplingRule') -> None:
        """Carry counters and reservoir (quota, TTL) over from the previous version of this rule.

        Args:
            rule: the rule with the same name from the previous fetch.
        """
        stats = rule.snapshot_statistics()
        with self._lock:
            self._request_count += stats['request_count']
            self._borrow_count += stats['borrow_count']
            self._sampled_count += stats['sampled_count']
            self._reservoir = rule.reservoir

    def ever_matched(self) -> bool:
        """Return whether any request matched since the last statistics snapshot."""
        return self._request_count > 0

    def time_to_report(self) -> bool:
        """Count one target-poll tick; True when the report interval X-Ray asked for has elapsed."""
        return self._reservoir.time_to_report()

    def increment_request_count(self) -> None:
        """Count a request that matched this rule."""
        with self._lock:
            self._request_count += 1

    def increment_borrow_count(self) -> None:
        """Count a request sampled by borrowing."""
        with self._lock:
            self._borrow_count += 1

    def increment_sampled_count(self) -> None:
        """Count a request sampled from the quota or by the fixed rate."""
        with self._lock:
            self._sampled_count += 1

    @property
    def rate(self) -> float:
        """Fraction sampled once the reservoir says no; updated by targets."""
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        self._rate = value

    @property
    def name(self) -> str:
        """The rule name."""
        return self._name

    @property
    def priority(self) -> int:
        """Lower values are matched first."""
        return self._priority

    @property
    def reservoir(self) -> Reservoir:
        """The rule's reservoir."""
        return self._reservoir

    @reservoir.setter
    def reservoir(self, value: Reservoir) -> None:
        self._reservoir = value

    @property
    def can_borrow(self) -> bool:
        """Whether the rule may borrow one request per second while it has no quota."""
        return self._can_borrow

    @property
    def host(self) -> Optional[str]:
        """Host pattern."""
        return self._host

    @property
    def method(self) -> Optional[str]:
        """HTTP method pattern."""
        return self._method

    @property
    def path(self) -> Optional[str]:
        """URL path pattern."""
        return self._path

    @property
    def service(self) -> Optional[str]:
        """Service name pattern."""
        return self._service

    @property
    def service_type(self) -> Optional[str]:
        """Service type (origin) pattern."""
        return self._service_type

    @property
    def request_count(self) -> int:
        """Requests matched since the last snapshot."""
        return self._request_count

    @property
    def borrow_count(self) -> int:
        """Requests sampled by borrowing since the last snapshot."""
        return self._borrow_count

    @property
    def sampled_count(self) -> int:
        """Requests sampled since the last snapshot."""
        return self._sampled_count

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._request_count = self._borrow_count = self._sampled_count = 0
        self._reservoir._after_fork_in_child()

    def __repr__(self) -> str:
        return 'SamplingRule(name=%r, priority=%r, rate=%r)' % (self._name, self._priority, self._rate)
