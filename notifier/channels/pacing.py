"""A pacer shared by every worker: one per-channel rate limit in Redis (Celery's ``rate_limit`` is per worker).

It lives with the channels, not with the Celery wiring, so anything that sends (or a web process) can pace itself
without importing Celery. The in-process token bucket is ``channels.base.RateLimiter``.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RedisRateLimiter:
    """A token bucket in Redis: one per-channel limit shared by every worker (Celery's ``rate_limit`` is per
    worker). Redis' own clock keeps hosts with drifting clocks in step."""

    SCRIPT = """
    local t = redis.call('TIME')
    local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
    local rate, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
    local s = redis.call('HMGET', KEYS[1], 'tokens', 'at')
    local tokens = tonumber(s[1]) or burst
    local at = tonumber(s[2]) or now
    tokens = math.min(burst, tokens + (now - at) * rate) - n
    redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
    redis.call('EXPIRE', KEYS[1], 3600)
    if tokens < 0 then return tostring(-tokens / rate) end
    return '0'
    """

    def __init__(self, url: str, key: str, rate: float, burst: float | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.key, self.rate = key, rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self.sleep = sleep
        self._script = self.client.register_script(self.SCRIPT)

    def acquire(self, n: int = 1) -> float:
        """Reserve ``n`` messages from the shared budget and wait until they may go; returns seconds waited."""
        wait = float(self._script(keys=[self.key], args=[self.rate, self.burst, n]))
        if wait > 0:
            self.sleep(wait)
        return wait
