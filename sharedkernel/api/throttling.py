"""Rate limits that do not cost a cache round trip per request.

DRF's ``SimpleRateThrottle`` keeps each client's request history — a list of up to
``num_requests`` timestamps (6,000 for the user rate) — in the cache, and reads and
writes that whole list on every request: two Redis round trips and the pickling of
the list, 11 % of an API request's time in ``bench/api_load.py``.

These throttles count instead in fixed windows of the rate's duration, one integer
per client and window in the shared cache, with the sliding-window estimate

    previous window's count × the part of it still inside the last ``duration`` + this window's count

so a burst at a window's edge is not let through twice. Each process adds its own
requests to the shared count in batches: at most ``THROTTLE_SYNC_FRACTION`` of the
limit (at least 1) or ``THROTTLE_SYNC_SECONDS`` of requests are counted locally
before the next shared ``count`` (one round trip: INCRBY and EXPIRE in a pipeline). A limit under 100 per window is therefore shared exactly
(every request synced); a large one is exceeded by at most one batch per process,
about 1 % with the defaults — never a refusal within the limit. Before refusing, a
process re-reads the shared count, so a refusal is never based on a stale figure.
While Redis is down the cache falls back to a per-process store (sharedkernel.cache).
"""

from __future__ import annotations

import threading

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from sharedkernel.cache import count_locally


class _Window:
    __slots__ = ("index", "previous", "known", "pending", "synced_at")

    def __init__(self, index: int, previous: int) -> None:
        self.index = index
        self.previous = previous  # the shared count of the window before this one
        self.known = 0  # the shared count of this window when last synced (this process's included)
        self.pending = 0  # this process's requests not yet added to the shared count
        self.synced_at = float("-inf")


_windows: dict[str, _Window] = {}
_lock = threading.Lock()
_MAX_KEYS = 50_000  # local state is dropped wholesale past this many clients (it is only a batch)


class WindowedRateThrottle(SimpleRateThrottle):
    """A ``SimpleRateThrottle`` that counts in shared fixed windows, batched per process."""

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        now = self.timer()
        index = int(now // self.duration)
        self.window_end = (index + 1) * self.duration
        overlap = 1 - (now - index * self.duration) / self.duration  # of the previous window, still counted
        with _lock:
            window = self._window(index)
            window.pending += 1  # this request, counted unless refused
            over = window.previous * overlap + window.known + window.pending > self.num_requests
            batch = max(1, int(self.num_requests * float(getattr(settings, "THROTTLE_SYNC_FRACTION", 0.01))))
            stale = now - window.synced_at >= float(getattr(settings, "THROTTLE_SYNC_SECONDS", 5))
            if over or stale or window.pending >= batch:
                if over:  # refuse only on the shared figures, never on this process's stale copy of them
                    window.previous = self.cache.get(self._shared_key(index - 1)) or 0
                self._sync(window, now)
                if window.previous * overlap + window.known > self.num_requests:
                    window.known = self._count(index, -1)  # a refused call is not counted
                    return self.throttle_failure()
        return True

    def wait(self) -> float:
        return max(1.0, self.window_end - self.timer())

    def _shared_key(self, index: int) -> str:
        return f"{self.key}:w{self.duration}:{index}"

    def _window(self, index: int) -> _Window:
        window = _windows.get(self.key)
        if window is not None and window.index == index:
            return window
        if window is not None and window.index == index - 1:
            self._sync(window, self.timer())  # hand in what this process counted before it rolls over
            previous = window.known
        else:
            previous = self.cache.get(self._shared_key(index - 1)) or 0
        if len(_windows) >= _MAX_KEYS:
            _windows.clear()
        window = _windows[self.key] = _Window(index, previous)
        return window

    def _sync(self, window: _Window, now: float) -> None:
        window.known = self._count(window.index, window.pending)
        window.pending = 0
        window.synced_at = now

    def _count(self, index: int, delta: int) -> int:
        """Add to the shared count of window ``index``; one round trip on our Redis cache."""
        key, timeout = self._shared_key(index), 2 * self.duration + 1
        if hasattr(self.cache, "count"):
            return self.cache.count(key, delta, timeout)
        return count_locally(self.cache, key, delta, timeout)


class UserThrottle(WindowedRateThrottle, UserRateThrottle):
    """The per-user (per API key) limit, scope ``user``."""


class AnonThrottle(WindowedRateThrottle, AnonRateThrottle):
    """The per-address limit for unauthenticated calls, scope ``anon``."""


def forget_local_counts() -> None:
    """Drop this process's batches (tests that clear the shared cache between requests)."""
    with _lock:
        _windows.clear()
