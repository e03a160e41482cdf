"""A stoppable, wakeable background loop shared by the rule and target pollers."""
import logging
import threading
from typing import Callable, Optional

log = logging.getLogger(__name__)


class PollerThread:
    """Runs ``step()`` on a named daemon thread; ``step`` returns the seconds to wait before the next run.

    The wait is on an event, so :meth:`wake_up` runs the next step at once and :meth:`stop` ends the loop
    without waiting out the interval.
    """

    def __init__(self, name: str, step: Callable[[], float], initial_delay: Callable[[], float]) -> None:
        self._name = name
        self._step = step
        self._initial_delay = initial_delay
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    def start(self) -> bool:
        """Start the thread unless it is running. Returns True if a thread was started."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
            return True

    def _run(self) -> None:
        delay = self._initial_delay()
        while not self._stop.is_set():
            if delay > 0:
                self._wake.wait(delay)
                self._wake.clear()
                if self._stop.is_set():
                    break
            try:
                delay = self._step()
            except Exception:  # a bug in one step must not kill sampling for the process
                log.exception('Sampling poller %s failed; it will retry.', self._name)
                delay = 10.0

    def wake_up(self) -> None:
        """Run the next step now instead of at the end of the current wait."""
        self._wake.set()

    def stop(self, timeout: Optional[float] = None) -> bool:
        """Stop the loop and wait up to ``timeout`` seconds for the thread.

        Returns:
            True if no thread is left running.
        """
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                return False
        self._thread = None
        self._wake.clear()
        return True

    @property
    def alive(self) -> bool:
        """Whether the thread is running."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def thread(self) -> Optional[threading.Thread]:
        """The current thread, if any."""
        return self._thread

    def _after_fork_in_child(self) -> None:
        # The thread does not exist in the child; start() makes a new one.
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = None
