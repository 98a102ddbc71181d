"""A sliding-minute rate limit per key (a client address), with bounded memory; shared HTTP plumbing.

Used where a request needs no credentials but costs work or reveals something (the OX free/busy
servlet answers whether an address exists). `retry_after` is checked before the work, `hit` counts it.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class RateLimiter:
    def __init__(self, per_minute: int, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = max(1, per_minute)
        self.max_keys = max(1, max_keys)
        self.clock = clock
        self._times: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._times.get(key)
        while times and times[0] + 60 <= now:
            times.popleft()
        return times

    def retry_after(self, key: str) -> int:
        """Whole seconds until one more request is allowed (0 = now)."""
        now = self.clock()
        times = self._recent(key, now)
        if times is None or len(times) < self.per_minute:
            return 0
        return max(1, math.ceil(times[0] + 60 - now))

    def hit(self, key: str) -> None:
        now = self.clock()
        times = self._recent(key, now)
        if times is None:
            times = deque(maxlen=self.per_minute)
        self._times.pop(key, None)
        self._times[key] = times
        times.append(now)
        while len(self._times) > self.max_keys:
            self._times.popitem(last=False)
