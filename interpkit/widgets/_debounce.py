"""A trailing-edge debouncer: many calls in quick succession run the function once, after a pause."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Debouncer:
    """Calls ``fn()`` ``delay`` seconds after the last call (a timer thread); ``delay <= 0`` calls at once.

    One run at a time: a run that starts while another is in progress waits for it, so a widget's
    state is never written by two runs at once.
    """

    def __init__(self, fn: Callable[[], None], delay: float) -> None:
        self.fn = fn
        self.delay = float(delay)
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()

    def __call__(self) -> None:
        if self.delay <= 0:
            self.run_now()
            return
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.delay, self.run_now)
            self._timer.daemon = True
            self._timer.start()

    def cancel(self) -> None:
        """Drop a pending call."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def run_now(self) -> None:
        """Run ``fn`` in the calling thread (a pending timed call is dropped)."""
        if threading.current_thread() is not self._timer:
            self.cancel()
        with self._run_lock:
            self.fn()

    @property
    def pending(self) -> bool:
        """Whether a timed call is waiting to fire."""
        t = self._timer
        return t is not None and t.is_alive()
