"""The reference: what users would reach for instead. Flask + flask-caching's
``@cache.cached`` over Redis, the same slow query through a psycopg2 pool, and the same page
rendered from a compiled Jinja template. Configured from the environment by the benchmark:
BENCH_PG_DSN, BENCH_REDIS_HOST, BENCH_REDIS_PORT, BENCH_DB_HOST, and BENCH_CACHE_TTL (seconds,
default 300; the expiry-cliff run sets a short one)."""

from __future__ import annotations

import os
import time

from flask import Flask, Response
from flask_caching import Cache
from psycopg2.pool import ThreadedConnectionPool

TEMPLATE = (
    "<!doctype html>\n"
    '<html lang="en">\n<head><meta charset="utf-8"><title>cachestack</title></head>\n'
    "<body>\n<h1>cachestack</h1>\n"
    "<p>Database version: <strong>{{ version }}</strong></p>\n"
    "<p>Database host: <strong>{{ host }}</strong></p>\n"
    "<p>Elapsed time: <strong>{{ '%.4f' % elapsed }} s</strong></p>\n"
    "<p>Cache: <strong>{{ outcome }}</strong></p>\n"
    "</body>\n</html>\n"
)


def create_app() -> Flask:
    app = Flask("reference")
    ttl = int(os.environ.get("BENCH_CACHE_TTL", "300"))
    cache = Cache(
        app,
        config={
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_HOST": os.environ["BENCH_REDIS_HOST"],
            "CACHE_REDIS_PORT": int(os.environ["BENCH_REDIS_PORT"]),
            "CACHE_DEFAULT_TIMEOUT": ttl,
        },
    )
    pool = ThreadedConnectionPool(0, 8, os.environ["BENCH_PG_DSN"])
    template = app.jinja_env.from_string(TEMPLATE)  # compiled once
    host = os.environ.get("BENCH_DB_HOST", "127.0.0.1")

    @app.get("/")
    @cache.cached(timeout=ttl)
    def index() -> Response:
        start = time.perf_counter()
        conn = pool.getconn()
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT slow_version()")
                version = cur.fetchone()[0]
        finally:
            pool.putconn(conn)
        body = template.render(
            version=version, host=host, elapsed=time.perf_counter() - start, outcome="MISS"
        )
        return Response(body, content_type="text/html; charset=utf-8")

    return app
