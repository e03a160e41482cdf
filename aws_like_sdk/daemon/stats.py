"""Thread-safe counters and a rate-limited logger for the daemon's hot paths."""
import logging
import threading
import time
from typing import Dict


class Counters:
    """Named integer counters, safe to bump from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Dict[str, int] = {}

    def add(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to counter ``name``."""
        with self._lock:
            self._values[name] = self._values.get(name, 0) + amount

    def get(self, name: str) -> int:
        """The current value of ``name`` (0 when never bumped)."""
        with self._lock:
            return self._values.get(name, 0)

    def snapshot(self) -> Dict[str, int]:
        """A copy of every counter."""
        with self._lock:
            return dict(self._values)


class RateLimitedLog:
    """Log at most ``per_interval`` messages per ``interval`` seconds, then a summary.

    A flood of garbage datagrams must not turn into a flood of log lines, so excess
    messages are counted and reported once the interval rolls over.
    """

    def __init__(self, logger: logging.Logger, per_interval: int = 5, interval: float = 10.0) -> None:
        self._logger = logger
        self._per_interval = per_interval
        self._interval = interval
        self._lock = threading.Lock()
        self._window_start = time.monotonic()
        self._emitted = 0
        self._suppressed = 0

    def warning(self, msg: str, *args: object) -> None:
        """Log a warning unless the budget for the current interval is spent."""
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= self._interval:
                suppressed, self._suppressed = self._suppressed, 0
                self._window_start, self._emitted = now, 0
                if suppressed:
                    self._logger.warning('%d similar messages suppressed in the last %.0f s',
                                         suppressed, self._interval)
            if self._emitted >= self._per_interval:
                self._suppressed += 1
                return
            self._emitted += 1
        self._logger.warning(msg, *args)
