"""How every service reaches Redis: `REDIS_URL`, or, with `REDIS_SENTINELS`, whichever server the
Sentinels say is the master of `REDIS_MASTER_NAME` now.

With Sentinels a connection asks them for the master when it connects and again after an error,
so the API and the workers follow a failover on their own: the requests and stages that were
talking to the old master fail with a connection error and are retried like any Redis outage
(`s2s.queues.work_until_stopped`, the API's 503 + Retry-After). The password and database of
`REDIS_URL` are used for the master; `REDIS_SENTINEL_PASSWORD` for the Sentinels themselves.
"""

from __future__ import annotations

from typing import Any

from redis import Redis
from redis.asyncio import BlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.connection import parse_url
from redis.sentinel import Sentinel

from .settings import Settings


def _sentinels(settings: Settings) -> list[tuple[str, int]]:
    hosts = []
    for entry in settings.redis_sentinels:
        host, _, port = entry.rpartition(":")
        hosts.append((host or entry, int(port) if host else 26379))
    return hosts


def _master_options(settings: Settings) -> dict[str, Any]:
    url = parse_url(settings.redis_url)  # type: ignore[no-untyped-call]
    return {k: url[k] for k in ("username", "password", "db") if k in url}


def _sentinel_options(settings: Settings, options: dict[str, Any]) -> dict[str, Any]:
    password = settings.redis_sentinel_password
    timeouts: dict[str, Any] = {
        k: options[k] for k in ("socket_timeout", "socket_connect_timeout") if k in options
    }
    return {**timeouts, **({"password": password.get_secret_value()} if password else {})}


def connect(settings: Settings, **options: Any) -> Redis:
    """A client of the master (`options` as for `redis.Redis`)."""
    if not settings.redis_sentinels:
        return Redis.from_url(settings.redis_url, **options)
    sentinel = Sentinel(_sentinels(settings), sentinel_kwargs=_sentinel_options(settings, options))  # type: ignore[no-untyped-call]
    master: Redis = sentinel.master_for(settings.redis_master_name, **_master_options(settings), **options)  # type: ignore[no-untyped-call]
    return master


def connect_async(settings: Settings, max_connections: int, **options: Any) -> AsyncRedis:
    """The same for asyncio; without Sentinels a pool on which a burst waits for a connection."""
    if not settings.redis_sentinels:
        pool = BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=max_connections,
            timeout=10,
            socket_connect_timeout=options.pop("socket_connect_timeout", 2),
        )
        return AsyncRedis(connection_pool=pool, **options)
    sentinel = AsyncSentinel(_sentinels(settings), sentinel_kwargs=_sentinel_options(settings, options))  # type: ignore[no-untyped-call]
    master: AsyncRedis = sentinel.master_for(
        settings.redis_master_name, max_connections=max_connections, **_master_options(settings), **options
    )
    return master
