"""The rules fetched from X-Ray, in match order, with their expiry."""
import threading
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence

from .sampling_rule import SamplingRule

__all__ = ['RuleCache', 'TTL']

TTL = 60 * 60
"""Seconds after the last successful rules fetch before the cache is ignored and local rules decide."""


class RuleCache:
    """Holds the centralized rules sorted by (priority, name).

    Readers take an immutable snapshot of the rule tuple, so the decision path needs no lock; writers
    (the pollers) serialise on a lock.
    """

    def __init__(self) -> None:
        self._rules: Sequence[SamplingRule] = ()
        self._last_updated: Optional[float] = None
        self._lock = threading.Lock()

    def get_matched_rule(self, sampling_req: Optional[Mapping[str, Any]], now: float) -> Optional[SamplingRule]:
        """Return the rule that decides for a request.

        Args:
            sampling_req: request attributes (see :meth:`SamplingRule.match`).
            now: current epoch seconds, compared against the cache expiry.

        Returns:
            The first matching rule by priority, else the ``Default`` rule, else None (also when the cache
            is empty or expired).
        """
        if self.is_expired(now):
            return None
        default = None
        for rule in self._rules:
            if rule.match(sampling_req):
                return rule
            if default is None and rule.is_default():
                default = rule
        return default

    def load_rules(self, rules: Iterable[SamplingRule]) -> None:
        """Replace the rules, keeping statistics and reservoir of rules whose name persists.

        Args:
            rules: freshly fetched rules, in any order.
        """
        with self._lock:
            previous = {rule.name: rule for rule in self._rules}
            fresh = list(rules)
            for rule in fresh:
                old = previous.get(rule.name)
                if old is not None:
                    rule.merge(old)
            fresh.sort(key=lambda r: (r.priority, r.name))
            self._rules = tuple(fresh)

    def load_targets(self, targets_dict: Mapping[str, Mapping[str, Any]]) -> None:
        """Apply targets from X-Ray to the rules they name.

        Args:
            targets_dict: rule name to ``{'rate', 'quota', 'TTL', 'interval'}``; None values are ignored.
        """
        with self._lock:
            for rule in self._rules:
                target = targets_dict.get(rule.name)
                if not target:
                    continue
                rule.reservoir.load_quota(target.get('quota'), target.get('TTL'), target.get('interval'))
                if target.get('rate') is not None:
                    rule.rate = target['rate']

    def is_expired(self, now: float) -> bool:
        """Return whether the rules are missing or older than :data:`TTL` at ``now``."""
        last = self._last_updated
        return last is None or now > last + TTL

    _is_expired = is_expired

    def clear(self) -> None:
        """Drop all rules (used by tests and after reconfiguration)."""
        with self._lock:
            self._rules = ()
            self._last_updated = None

    @property
    def rules(self) -> Sequence[SamplingRule]:
        """The rules in match order (an immutable snapshot)."""
        return self._rules

    @rules.setter
    def rules(self, value: Iterable[SamplingRule]) -> None:
        self._rules = tuple(value)

    @property
    def last_updated(self) -> Optional[float]:
        """Epoch seconds of the last successful rules fetch, or None."""
        return self._last_updated

    @last_updated.setter
    def last_updated(self, value: Optional[float]) -> None:
        self._last_updated = value

    def snapshot(self) -> Dict[str, Any]:
        """Return a plain view of the cache for logging and debugging."""
        return {'last_updated': self._last_updated, 'rules': [rule.name for rule in self._rules]}

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        for rule in self._rules:
            rule._after_fork_in_child()
