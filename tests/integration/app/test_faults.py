"""Degrading instead of failing: Valkey killed or frozen (docker kill, docker pause), PostgreSQL
stopped or frozen."""

from __future__ import annotations

import time
from typing import Any

import pytest
from cachestack_app.cache import CACHE_KEY

from tests.integration.app.conftest import SLOW_SECONDS, ini, install_slow_function, slow_calls
from tests.integration.app.endpoint import Endpoint
from tests.servers.redis import start_redis


def _wait_for(client, outcome: str, timeout: float = 10) -> float:
    """Request / until X-Cache is ``outcome``; return how long that took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if client.get("/").headers["X-Cache"] == outcome:
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"X-Cache never became {outcome}")


def test_redis_killed_gives_bypass_then_hit_after_restart(app_db, redis_private_server, make_app):
    app, client = make_app(ini(app_db, redis_private_server), breaker_cooldown=2)
    assert client.get("/").headers["X-Cache"] == "MISS"
    assert client.get("/").headers["X-Cache"] == "HIT"

    redis_private_server.kill()
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["X-Cache"] == "BYPASS"
    assert "PostgreSQL 17" in response.get_data(as_text=True)
    # While the breaker is open, Redis is not even tried.
    assert app.cache.breaker.state == "open"
    assert client.get("/").headers["X-Cache"] == "BYPASS"

    redis_private_server.start()  # same port, empty cache
    _wait_for(client, "MISS")
    assert client.get("/").headers["X-Cache"] == "HIT"
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200 and ready.json["redis"] == "ok"


def test_redis_down_at_start_then_up(app_db, redis_private_server, make_app):
    redis_private_server.kill()
    _app, client = make_app(ini(app_db, redis_private_server), breaker_cooldown=0.3)
    assert client.get("/").headers["X-Cache"] == "BYPASS"
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200
    assert ready.json["status"] == "degraded" and ready.json["postgresql"] == "ok"
    # Refused by the breaker or by Redis itself: either way, the cause is named.
    assert ready.json["redis"].startswith("degraded: "), ready.json
    assert "ConnectionError" in ready.json["redis"], ready.json
    redis_private_server.start()
    _wait_for(client, "MISS")
    assert client.get("/").headers["X-Cache"] == "HIT"


def test_redis_frozen_gives_bypass_within_the_timeout(app_db, redis_private_server, make_app):
    text = ini(app_db, redis_private_server, redis_extra={"socket_timeout": 0.2})
    _app, client = make_app(text, breaker_cooldown=5)
    client.get("/")
    assert client.get("/").headers["X-Cache"] == "HIT"
    redis_private_server.freeze()
    try:
        start = time.monotonic()
        response = client.get("/")
        took = time.monotonic() - start
        assert response.status_code == 200
        assert response.headers["X-Cache"] == "BYPASS"
        # One socket timeout (0.2 s), then the query: not redis-py's default retries.
        assert took < SLOW_SECONDS + 0.6, took
        # The breaker is open: the next request does not pay the timeout again.
        start = time.monotonic()
        assert client.get("/").headers["X-Cache"] == "BYPASS"
        assert time.monotonic() - start < SLOW_SECONDS + 0.15
    finally:
        redis_private_server.thaw()


def test_postgresql_stopped_serves_hit_and_miss_gets_503(
    postgresql_private_server, redis_private_server, make_app
):
    pg = postgresql_private_server
    install_slow_function(pg)
    _app, client = make_app(ini(pg, redis_private_server))
    assert client.get("/").headers["X-Cache"] == "MISS"
    pg.stop()

    hit = client.get("/")
    assert hit.status_code == 200
    assert hit.headers["X-Cache"] == "HIT"
    assert "PostgreSQL 17" in hit.get_data(as_text=True)

    ready = client.get("/healthz/ready")
    assert ready.status_code == 503
    assert ready.json["postgresql"].startswith("unavailable: "), ready.json
    assert pg.password not in ready.get_data(as_text=True)

    redis_private_server.client().flushall()
    miss = client.get("/")
    assert miss.status_code == 503
    assert miss.headers["X-Cache"] == "MISS"
    assert miss.headers["Content-Type"].startswith("text/html")
    body = miss.get_data(as_text=True)
    assert "Service unavailable" in body
    assert "Traceback" not in body and "psycopg2" not in body and pg.password not in body

    pg.start()  # pooled connections died with the server: the app reconnects
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["X-Cache"] == "MISS"
    assert client.get("/healthz/ready").status_code == 200
    assert slow_calls(pg) == 2


def _timed_get(client, path: str) -> tuple[Any, float]:
    start = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - start


def test_postgresql_frozen_answers_within_the_timeouts(
    postgresql_private_server, redis_private_server, make_app
):
    """A hung server (or a network dropping packets) answers nothing, not even an error:
    the page and the readiness probe give up on their own clocks instead of waiting for
    ever, and the app recovers when the server does."""
    pg = postgresql_private_server
    install_slow_function(pg)
    text = ini(pg, redis_private_server, postgresql={"connect_timeout": 2, "statement_timeout": 1})
    _app, client = make_app(text)
    assert client.get("/").headers["X-Cache"] == "MISS"  # a pooled connection stays open
    try:
        pg.freeze()
        hit, took = _timed_get(client, "/")
        assert hit.status_code == 200 and hit.headers["X-Cache"] == "HIT", took

        ready, took = _timed_get(client, "/healthz/ready")  # within connect_timeout
        assert ready.status_code == 503 and ready.json["postgresql"].startswith("unavailable: ")
        assert 1.8 < took < 3.5, took

        redis_private_server.client().flushall()
        # The probe's timeout dropped the idle connection: this one connects, and gives
        # up after connect_timeout.
        miss, took = _timed_get(client, "/")
        assert miss.status_code == 503 and miss.headers["X-Cache"] == "MISS"
        assert "Service unavailable" in miss.get_data(as_text=True)
        assert 1.8 < took < 3.5, took
    finally:
        pg.thaw()
    assert client.get("/").headers["X-Cache"] == "MISS"
    assert client.get("/healthz/ready").status_code == 200


def test_a_host_name_that_does_not_resolve_gives_503_and_says_so(
    app_db, clean_redis, make_app, capsys
):
    text = ini(app_db, clean_redis).replace(f"host = {app_db.host}", "host = db.invalid", 1)
    _app, client = make_app(text)
    miss = client.get("/")
    assert miss.status_code == 503 and miss.headers["X-Cache"] == "MISS"
    assert "database unavailable: cannot resolve db.invalid" in capsys.readouterr().err
    assert client.get("/healthz/ready").status_code == 503


def postgres_config(pg: Any, **settings: Any) -> Any:
    """The app's [postgresql] settings for a test server, without TLS."""
    from cachestack_app.config import PostgresConfig

    return PostgresConfig(
        host=pg.host,
        port=pg.port,
        dbname=pg.dbname,
        user=pg.user,
        password=pg.password,
        sslmode="disable",
        **settings,
    )


def test_a_hung_server_costs_one_query_timeout_then_connect_timeouts(
    postgresql_private_server,
):
    """A query on an open connection whose server stops answering: statement_timeout
    cannot fire, so the client's deadline does (connect + statement timeouts + a grace).
    The other idle connections lead to the same server: they are closed, so the next call
    connects afresh and gives up after connect_timeout, instead of the whole timeout per
    idle connection."""
    from cachestack_app.db import Database, DatabaseUnavailable, query_timeout

    pg = postgresql_private_server
    install_slow_function(pg)
    config = postgres_config(pg, connect_timeout=2, statement_timeout=1)
    db = Database(config)
    with db.pool.connection() as _first, db.pool.connection() as _second:
        pass  # two idle connections
    timeout = query_timeout(config)
    try:
        pg.freeze()
        start = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match=rf"no answer .* within {timeout:g} s"):
            db.slow_version()
        took = time.monotonic() - start
        assert timeout - 0.1 < took < timeout + 1, took

        start = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match=r"no answer .* within 2 s"):
            db.slow_version()
        took = time.monotonic() - start
        assert 1.9 < took < 3, took
    finally:
        pg.thaw()
    assert db.slow_version()[0].startswith("PostgreSQL 17")
    db.pool.close()


def test_after_a_postgresql_restart_the_first_query_succeeds(postgresql_private_server):
    """Every idle pooled connection dies with the server: the retry must not take another."""
    from cachestack_app.db import ConnectionPool

    pg = postgresql_private_server
    pool = ConnectionPool(postgres_config(pg))
    # Three connections in use at once, then idle in the pool.
    with (
        pool.connection() as (first, _fresh1),
        pool.connection() as (second, _fresh2),
        pool.connection() as (third, _fresh3),
    ):
        assert len({id(first), id(second), id(third)}) == 3
    pg.restart()
    try:
        assert pool.run("SELECT 1") == 1
        assert pool.run("SELECT 2") == 2
    finally:
        pool.close()


def test_after_a_failover_the_cache_follows_the_endpoint(app_db, make_app):
    """The old primary turns read-only; the endpoint now leads to the new one. A connection
    kept open to the old node would fail every lock for good (BYPASS for ever)."""
    old, new = start_redis(), start_redis()
    endpoint = Endpoint(old.port)
    try:
        _app, client = make_app(ini(app_db, endpoint))
        assert client.get("/").headers["X-Cache"] == "MISS"
        assert client.get("/").headers["X-Cache"] == "HIT"

        old.client().execute_command("REPLICAOF", "127.0.0.1", str(new.port))
        endpoint.point_to(new.port)
        # Demoted, the old node copies the new one's (empty) data set: the key is gone.
        deadline = time.monotonic() + 10
        while old.client().info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the old primary never became a replica"
            time.sleep(0.05)
        assert old.client().get(CACHE_KEY) is None
        _wait_for(client, "HIT")
        assert new.client().get(CACHE_KEY) is not None
    finally:
        endpoint.close()
        old.destroy()
        new.destroy()
