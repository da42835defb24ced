"""Redis cache for hot reads, invalidated per owner by a generation counter.

A read looks up the owner's generation first and caches under it; every write bumps the
generation. A reader that loaded old data before a write therefore stores it under a
generation nobody asks for any more, so no stale answer is served after a write.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


class NoCache:
    """Used when no Redis URL is configured: always loads."""

    def get_or_load(self, owner: str, key: str, load: Callable[[], Any]) -> Any:
        return load()

    def invalidate(self, owner: str) -> None:
        return None


class RedisCache:
    def __init__(self, url: str, prefix: str, ttl: int = 300):
        import redis

        self.redis = redis.Redis.from_url(url)
        self.prefix = prefix
        self.ttl = ttl
        self.hits = 0
        self.misses = 0

    def _generation_key(self, owner: str) -> str:
        return f"{self.prefix}:gen:{owner}"

    def get_or_load(self, owner: str, key: str, load: Callable[[], Any]) -> Any:
        generation = int(self.redis.get(self._generation_key(owner)) or 0)
        entry = f"{self.prefix}:{owner}:{generation}:{key}"
        cached = self.redis.get(entry)
        if cached is not None:
            self.hits += 1
            return json.loads(cached)
        self.misses += 1
        value = load()
        self.redis.set(entry, json.dumps(value), ex=self.ttl)
        return value

    def invalidate(self, owner: str) -> None:
        self.redis.incr(self._generation_key(owner))


def open_cache(url: str | None, prefix: str | None, ttl: int = 300):
    return RedisCache(url, prefix=prefix, ttl=ttl) if url else NoCache()
