"""The part of the sandbox benchmark that runs inside cachestack-web, with the app's own
virtualenv and ``PYTHONPATH=<bench bundle>:/opt/cachestack/app``.

* ``create_reference_app()``: bench/app's flask-caching reference app, unchanged, with only
  its Redis backend switched to what the sandbox runs (a Redis Cluster with TLS and an AUTH
  token) and its PostgreSQL DSN built from the app's own /etc/cachestack/app.ini. The
  credentials are read here, inside the container, and go nowhere else.
* ``python -m bench.sandbox.remote forget``: delete the cached page of both apps (our key and
  its lock, and flask-caching's view key), so the next request is a cold one.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from cachestack_app.cache import cache_key, lock_key, make_client
from cachestack_app.config import AppConfig, load_config

# flask-caching's key for the cached view of "/" (CACHE_KEY_PREFIX + "view/" + path).
REFERENCE_KEY = "flask_cache_view//"


def _reference_cache_config(config: AppConfig) -> dict[str, Any]:
    redis = config.redis
    options: dict[str, Any] = {}
    if redis.ssl:
        options.update(ssl=True, ssl_cert_reqs="required")
        if redis.ssl_ca_certs:
            options["ssl_ca_certs"] = redis.ssl_ca_certs
    if redis.username:
        options["username"] = redis.username
    if redis.cluster:
        return {
            "CACHE_TYPE": "RedisClusterCache",
            "CACHE_REDIS_CLUSTER": f"{redis.host}:{redis.port}",
            "CACHE_REDIS_PASSWORD": redis.password or "",
            "CACHE_OPTIONS": options,
        }
    return {
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_HOST": redis.host,
        "CACHE_REDIS_PORT": redis.port,
        "CACHE_REDIS_PASSWORD": redis.password,
        "CACHE_OPTIONS": options,
    }


def create_reference_app() -> Any:
    """bench.app.reference's app, talking to the sandbox's PostgreSQL and Redis."""
    from psycopg2.extensions import make_dsn

    from bench.app import reference

    config = load_config()
    pg_kwargs = config.postgresql.connect_kwargs()
    pg_kwargs["application_name"] = "bench_reference"
    os.environ["BENCH_PG_DSN"] = make_dsn(**pg_kwargs)
    os.environ["BENCH_REDIS_HOST"] = config.redis.host
    os.environ["BENCH_REDIS_PORT"] = str(config.redis.port)
    os.environ["BENCH_DB_HOST"] = config.postgresql.host
    overrides = _reference_cache_config(config)

    class SandboxCache(reference.Cache):  # type: ignore[misc,valid-type]
        """flask_caching.Cache with the sandbox's Redis settings laid over the reference's."""

        def __init__(self, app: Any = None, config: dict[str, Any] | None = None) -> None:
            settings = {k: v for k, v in (config or {}).items() if not k.startswith("CACHE_REDIS_")}
            super().__init__(app, config={**settings, **overrides})

    reference.Cache = SandboxCache  # type: ignore[misc]
    return reference.create_app()


def forget() -> None:
    """Delete both apps' cached pages (and our lock): the next request is cold."""
    config = load_config()
    client = make_client(config.redis)
    namespace = config.cache.namespace  # the stack's name (app.ini's [cache] namespace)
    for key in (cache_key(namespace), lock_key(namespace), REFERENCE_KEY):
        client.delete(key)  # one key per call: they live in different cluster slots
    client.close()


def main(argv: list[str]) -> None:
    if argv != ["forget"]:
        raise SystemExit("usage: python -m bench.sandbox.remote forget")
    forget()


if __name__ == "__main__":
    main(sys.argv[1:])
