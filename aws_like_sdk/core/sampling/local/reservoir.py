"""Per-second reservoir for local sampling rules."""
import threading
import time
from typing import Callable

__all__ = ['Reservoir']


class Reservoir:
    """Lets at most ``traces_per_sec`` requests through per wall-clock second.

    Args:
        traces_per_sec: the rule's ``fixed_target``.
        clock: returns the current epoch time in seconds; injectable for tests.
    """

    def __init__(self, traces_per_sec: int = 0, clock: Callable[[], float] = time.time) -> None:
        self._traces_per_sec = traces_per_sec
        self._clock = clock
        self._lock = threading.Lock()
        self._this_sec = 0
        self._used_this_sec = 0

    @property
    def traces_per_sec(self) -> int:
        """The number of requests admitted per second."""
        return self._traces_per_sec

    def take(self) -> bool:
        """Consume one slot of the current second.

        Returns:
            True if a slot was free, False once this second's ``traces_per_sec`` are used up.
        """
        now = int(self._clock())
        with self._lock:
            if now != self._this_sec:
                self._this_sec = now
                self._used_this_sec = 0
            if self._used_this_sec >= self._traces_per_sec:
                return False
            self._used_this_sec += 1
            return True

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
