"""Reservoir of a centralized sampling rule: a quota assigned by X-Ray, or borrowing while there is none."""
import enum
import threading
from typing import Optional

__all__ = ['Reservoir', 'ReservoirDecision']


class ReservoirDecision(enum.Enum):
    """What the reservoir decided for one request."""

    TAKE = 'take'
    """Sampled from the quota X-Ray assigned to this client."""
    BORROW = 'borrow'
    """Sampled by borrowing (one request per second while no fresh quota is known)."""
    NO = 'no'
    """The reservoir is used up for this second; the rule's fixed rate decides."""


class Reservoir:
    """Per-second reservoir of a centralized rule; every method is thread-safe.

    Until X-Ray assigns a quota (or after its TTL passes) a rule with a non-zero reservoir size may borrow
    one request per second, so each client samples something before the first target poll.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._quota: Optional[int] = None
        self._ttl: Optional[float] = None
        self._this_sec = 0
        self._taken_this_sec = 0
        self._borrowed_this_sec = 0
        # Report every `_report_interval` target-poll ticks (X-Ray's Interval is in seconds, a tick is 10 s).
        self._report_interval = 1.0
        self._report_elapsed = 0

    def borrow_or_take(self, now: int, can_borrow: bool) -> ReservoirDecision:
        """Try to admit one request in second ``now``.

        Args:
            now: the current epoch second.
            can_borrow: whether the rule has a non-zero reservoir size.

        Returns:
            TAKE when a fresh quota has room, BORROW when there is no fresh quota and this second's single
            borrow is free, NO otherwise.
        """
        with self._lock:
            if now != self._this_sec:
                self._this_sec = now
                self._taken_this_sec = 0
                self._borrowed_this_sec = 0
            if self._quota is not None and self._quota >= 0 and self._ttl is not None and self._ttl >= now:
                if self._taken_this_sec >= self._quota:
                    return ReservoirDecision.NO
                self._taken_this_sec += 1
                return ReservoirDecision.TAKE
            if can_borrow and self._borrowed_this_sec < 1:
                self._borrowed_this_sec += 1
                return ReservoirDecision.BORROW
            return ReservoirDecision.NO

    def load_quota(self, quota: Optional[int], TTL: Optional[float], interval: Optional[float]) -> None:  # noqa: N803
        """Apply a target from X-Ray; ``None`` leaves the corresponding value unchanged.

        Args:
            quota: requests per second this client may sample.
            TTL: epoch seconds until which the quota is valid.
            interval: seconds X-Ray wants between statistics reports.
        """
        with self._lock:
            if quota is not None:
                self._quota = quota
            if TTL is not None:
                self._ttl = TTL
            if interval is not None:
                self._report_interval = interval / 10

    def time_to_report(self) -> bool:
        """Count one target-poll tick and return whether the rule's report interval has elapsed."""
        with self._lock:
            if self._report_elapsed + 1 >= self._report_interval:
                self._report_elapsed = 0
                return True
            self._report_elapsed += 1
            return False

    # Upstream's private spelling, for callers that reached for it.
    _time_to_report = time_to_report

    def clear_quota(self) -> None:
        """Forget the assigned quota; the rule borrows again until X-Ray assigns a new one."""
        with self._lock:
            self._quota = None
            self._ttl = None

    @property
    def quota(self) -> Optional[int]:
        """Requests per second assigned by X-Ray, or None before the first target."""
        return self._quota

    @property
    def TTL(self) -> Optional[float]:  # noqa: N802  (public name kept from upstream)
        """Epoch seconds when the quota expires, or None."""
        return self._ttl

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        # The quota was granted to the parent's client id; the child must not spend it a second time.
        self._quota = None
        self._ttl = None
