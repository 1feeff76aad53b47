"""A query's Redis commands, queued in one pipeline: one round trip.

Intermediate results go to temporary keys that carry a name unique to the
query (so concurrent queries never touch each other's keys), a TTL as a safety
net, and a DEL at the end of the same pipeline.
"""

from __future__ import annotations

import uuid
from typing import Any

import redis

from .layout import TEMPORARY_PREFIX

__all__ = ["QueryPlan"]

# Underscores after "bitop", so that bitmapist's get_event_names, which skips
# names starting "bitop_", does not list a query's keys as an event.
_PREFIX = f"{TEMPORARY_PREFIX}fb"


class QueryPlan:
    """The commands of one query, queued in one pipeline."""

    def __init__(self, client: redis.Redis, ttl: int) -> None:
        self.client = client
        self.pipeline = client.pipeline(transaction=False)
        self.ttl = ttl
        self.prefix = f"{_PREFIX}_{uuid.uuid4().hex}"
        self.temp_keys: list[str] = []

    def new_key(self) -> str:
        """A new temporary key name, deleted when the plan runs."""
        key = f"{self.prefix}_{len(self.temp_keys)}"
        self.temp_keys.append(key)
        return key

    def bitop(self, operation: str, destination: str, *sources: str) -> None:
        """Queue ``BITOP operation destination sources...`` and the TTL."""
        # BITOP replaces the destination, TTL included, so the TTL follows each one.
        self.pipeline.bitop(operation, destination, *sources)
        self.pipeline.expire(destination, self.ttl)

    def bitcounts(self, keys: list[str]) -> list[int]:
        """Queue a BITCOUNT of each key; return where their results will be."""
        for key in keys:
            self.pipeline.bitcount(key)
        end = len(self.pipeline)
        return list(range(end - len(keys), end))

    def union(self, keys: list[str]) -> str:
        """The key that holds the OR of ``keys``: the key itself for one."""
        if len(keys) == 1:
            return keys[0]
        destination = self.new_key()
        self.bitop("OR", destination, *keys)
        return destination

    def execute(self, keep: str | None = None) -> list[Any]:
        """Run the pipeline, deleting every temporary key but ``keep``.

        On failure the keys are deleted on a best-effort basis; their TTL
        removes what that misses.
        """
        doomed = [key for key in self.temp_keys if key != keep]
        if doomed:
            self.pipeline.delete(*doomed)
        try:
            results: list[Any] = self.pipeline.execute()
        except BaseException:
            try:
                if self.temp_keys:
                    self.client.delete(*self.temp_keys)
            except redis.RedisError:
                pass
            raise
        return results
