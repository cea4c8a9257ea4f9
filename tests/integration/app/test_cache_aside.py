"""The page against real PostgreSQL and Redis: cache-aside, TTL, TLS, cluster, sslmode."""

from __future__ import annotations

import json
import re
import socket
import time

from cachestack_app.cache import LOCK_KEY, CacheUnavailable

from tests.integration.app.conftest import (
    SLOW_SECONDS,
    ini,
    install_slow_function,
    metric,
    slow_calls,
)


def test_miss_then_hit(app_db, clean_redis, make_app):
    _app, client = make_app(ini(app_db, clean_redis))
    first = client.get("/")
    assert first.status_code == 200
    assert first.headers["X-Cache"] == "MISS"
    page = first.get_data(as_text=True)
    assert "PostgreSQL 17" in page
    assert f"<strong>{app_db.host}</strong>" in page
    assert "Cache: <strong>MISS</strong>" in page
    assert "Elapsed time:" in page
    timing = first.headers["Server-Timing"]
    assert "cache;dur=" in timing and "db;dur=" in timing
    db_ms = float(timing.split("db;dur=")[1].split(",")[0])
    assert db_ms >= SLOW_SECONDS * 1000

    second = client.get("/")
    assert second.status_code == 200
    assert second.headers["X-Cache"] == "HIT"
    assert "Cache: <strong>HIT</strong>" in second.get_data(as_text=True)
    assert "db;dur=0.00" in second.headers["Server-Timing"]
    assert slow_calls(app_db) == 1


def test_cached_value_is_versioned_with_ttl(app_db, clean_redis, make_app):
    _app, client = make_app(ini(app_db, clean_redis, ttl=100))
    assert client.get("/").headers["X-Cache"] == "MISS"
    redis = clean_redis.client()
    keys = [k.decode() for k in redis.keys("*")]
    assert keys == ["cachestack:{slow_version}:v2"], keys  # the lock is released
    # Redis keeps it fresh (the TTL less a jitter of at most 10%) and stale_ttl more
    # (by default twice the TTL); the value says until when it is fresh.
    ttl_ms = redis.pttl(keys[0])
    assert 89_000 + 200_000 <= ttl_ms <= 100_000 + 200_000
    value = json.loads(redis.get(keys[0]))
    assert 89 <= value["fresh_until"] - value["cached_at"] <= 100
    assert value["query_seconds"] >= SLOW_SECONDS


def test_ttl_expiry_without_stale_serving(app_db, clean_redis, make_app):
    # stale_ttl = 0: after the TTL nothing is served, the next request waits for the query.
    _app, client = make_app(ini(app_db, clean_redis, ttl=1, cache={"stale_ttl": 0, "beta": 0}))
    assert client.get("/").headers["X-Cache"] == "MISS"
    assert client.get("/").headers["X-Cache"] == "HIT"
    # The TTL alone, no stale_ttl on top (which would be above 1000); the floor leaves a
    # loaded machine time between the write and this read (887 ms once in CI).
    assert 500 <= clean_redis.client().pttl("cachestack:{slow_version}:v2") <= 1000
    time.sleep(1.1)
    assert client.get("/").headers["X-Cache"] == "MISS"
    assert slow_calls(app_db) == 2


def test_ttl_expiry_serves_stale_then_the_refreshed_value(app_db, clean_redis, make_app):
    # By default, past the TTL the old value is served at once while one refresh runs.
    _app, client = make_app(ini(app_db, clean_redis, ttl=1, cache={"beta": 0}))
    assert client.get("/").headers["X-Cache"] == "MISS"
    assert client.get("/").headers["X-Cache"] == "HIT"
    time.sleep(1.1)
    stale = client.get("/")
    assert stale.headers["X-Cache"] == "STALE"
    assert int(stale.headers["Age"]) >= 1
    deadline = time.monotonic() + 5
    while (page := client.get("/")).headers["X-Cache"] != "HIT":
        assert page.headers["X-Cache"] == "STALE", page.headers
        assert time.monotonic() < deadline, "the refresh never stored a fresh value"
        time.sleep(0.05)
    assert int(page.headers["Age"]) == 0
    assert slow_calls(app_db) == 2


def test_a_miss_rechecks_the_cache_once_it_holds_the_lock(app_db, clean_redis, make_app):
    """The race: this request's GET missed, then another request filled the cache and
    released the lock before this one took it. It must use that value, not run the query."""
    app, client = make_app(ini(app_db, clean_redis))
    assert client.get("/").headers["X-Cache"] == "MISS"  # the other request's fill
    real_get = app.cache.get
    gets: list[bytes | None] = []

    def get_that_missed_before_the_fill() -> bytes | None:
        gets.append(None if not gets else real_get())
        return gets[-1]

    app.cache.get = get_that_missed_before_the_fill
    late = client.get("/")
    assert late.status_code == 200
    assert late.headers["X-Cache"] == "MISS"
    assert "PostgreSQL 17" in late.get_data(as_text=True)
    assert len(gets) == 2  # the first GET, then the check under the lock
    assert slow_calls(app_db) == 1
    assert clean_redis.client().exists(LOCK_KEY) == 0


def test_the_lock_is_released_when_redis_fails_while_it_is_held(app_db, clean_redis, make_app):
    """The breaker opens while this request holds the lock: the lock must still go, or
    every other worker and host waits for it until lock_timeout."""
    app, client = make_app(ini(app_db, clean_redis), breaker_cooldown=60)
    gets: list[None] = []

    def miss_then_fail() -> None:
        gets.append(None)
        if len(gets) == 2:  # the check under the lock
            app.cache.breaker.failure()
            raise CacheUnavailable("redis failed")
        return None

    app.cache.get = miss_then_fail
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["X-Cache"] == "BYPASS"
    assert clean_redis.client().exists(LOCK_KEY) == 0


def lock_timeouts(client) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    return metric(text, "cachestack_cache_lock_timeouts_total")


def test_a_waiter_answers_503_rather_than_query_beside_the_holder(app_db, clean_redis, make_app):
    """Another request holds the lock past lock_timeout (a slow database): waiters give
    up with a 503 instead of piling a second slow query onto that database."""
    _app, client = make_app(ini(app_db, clean_redis) + "lock_timeout = 1\n")
    before = lock_timeouts(client)
    clean_redis.client().set(LOCK_KEY, "another-request", px=60_000)
    start = time.monotonic()
    page = client.get("/")
    waited = time.monotonic() - start
    assert page.status_code == 503
    assert page.headers["Retry-After"] == "5"
    assert "Service unavailable" in page.get_data(as_text=True)
    assert 1 <= waited < 3
    assert slow_calls(app_db) == 0
    assert lock_timeouts(client) == before + 1
    assert clean_redis.client().get(LOCK_KEY) == b"another-request"  # not ours to delete


def test_a_waiter_takes_over_once_a_dead_holders_lock_expires(app_db, clean_redis, make_app):
    """The holder died (its lock is left to expire): by default waiters outlast the lock,
    so one of them runs the query then instead of answering 503."""
    _app, client = make_app(ini(app_db, clean_redis))
    clean_redis.client().set(LOCK_KEY, "a-dead-request", px=1_500)
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["X-Cache"] == "MISS"
    assert float(page.headers["X-Cache-Lock-Wait"]) >= 1.4
    assert slow_calls(app_db) == 1
    assert clean_redis.client().exists(LOCK_KEY) == 0


def test_head_has_headers_and_no_body(app_db, clean_redis, make_app):
    _app, client = make_app(ini(app_db, clean_redis))
    client.get("/")
    head = client.head("/")
    assert head.status_code == 200
    assert head.headers["X-Cache"] == "HIT"
    assert head.get_data() == b""


def test_post_to_index_is_refused_and_counted(app_db, clean_redis, make_app):
    _app, client = make_app(ini(app_db, clean_redis))

    def refused(method: str) -> float:
        text = client.get("/metrics").get_data(as_text=True)
        name = f'cachestack_http_requests_total{{method="{method}",route="/",status="405"}}'
        found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    posts, others = refused("POST"), refused("other")
    assert client.post("/").status_code == 405
    # A made-up method is counted, under "other" (no series per name a client sends).
    assert client.open("/", method="BREW").status_code == 405
    assert (refused("POST"), refused("other")) == (posts + 1, others + 1)
    assert 'method="BREW"' not in client.get("/metrics").get_data(as_text=True)
    assert client.get("/nothing-here").status_code == 404


def test_html_in_version_is_escaped(app_db, clean_redis, make_app):
    app_db.execute(
        "CREATE OR REPLACE FUNCTION slow_version() RETURNS text LANGUAGE sql "
        "AS $$ SELECT '<script>x</script>'::text $$"
    )
    _app, client = make_app(ini(app_db, clean_redis))
    for _attempt in range(2):
        page = client.get("/").get_data(as_text=True)
        assert "<script>" not in page
        assert "&lt;script&gt;x&lt;/script&gt;" in page


def test_redis_tls_with_password(app_db, redis_tls_server, make_app):
    redis_tls_server.client().flushall()
    _app, client = make_app(ini(app_db, redis_tls_server))
    assert client.get("/").headers["X-Cache"] == "MISS"
    assert client.get("/").headers["X-Cache"] == "HIT"
    assert redis_tls_server.client().exists("cachestack:{slow_version}:v2") == 1


def test_redis_tls_verifies_the_certificate_by_default(app_db, redis_tls_server, make_app):
    # No CA file: the test CA is not in the system store, so verification fails.
    text = ini(app_db, redis_tls_server, redis_extra={"ssl_ca_certs": None})
    _app, client = make_app(text)
    assert client.get("/").headers["X-Cache"] == "BYPASS"


def test_redis_wrong_password_bypasses(app_db, redis_tls_server, make_app):
    wrong = "wrong-token-" + "x" * 20
    _app, client = make_app(ini(app_db, redis_tls_server, redis_extra={"password": wrong}))
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["X-Cache"] == "BYPASS"
    # Still ready (PostgreSQL answers), but the body says why the cache is not working,
    # also while the breaker keeps Redis skipped, and without the token.
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200
    assert ready.json["status"] == "degraded" and ready.json["postgresql"] == "ok"
    assert ready.json["redis"].startswith("degraded: "), ready.json
    assert "AuthenticationError" in ready.json["redis"], ready.json
    assert wrong not in ready.get_data(as_text=True)
    assert redis_tls_server.password not in ready.get_data(as_text=True)


def test_redis_cluster_wrong_password_is_named_by_readiness(app_db, redis_cluster, make_app):
    # The sandbox's case: a cluster with TLS and AUTH, and a token it does not take.
    wrong = "wrong-token-" + "y" * 20
    text = ini(app_db, redis_cluster, cluster=True, redis_extra={"password": wrong})
    _app, client = make_app(text)
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200
    assert ready.json["redis"].startswith("degraded: "), ready.json
    # RedisCluster wraps it: "... cannot be connected ...: invalid username-password pair".
    assert "invalid username-password pair" in ready.json["redis"], ready.json
    assert len(ready.json["redis"]) <= len("degraded: ") + 160
    assert client.get("/").headers["X-Cache"] == "BYPASS"
    assert wrong not in ready.get_data(as_text=True)


def test_redis_cluster_with_tls_and_auth(app_db, redis_cluster, make_app):
    redis_cluster.client().flushall()
    _app, client = make_app(ini(app_db, redis_cluster, cluster=True))
    assert client.get("/").headers["X-Cache"] == "MISS"
    assert client.get("/").headers["X-Cache"] == "HIT"
    assert redis_cluster.client().exists("cachestack:{slow_version}:v2") == 1
    assert slow_calls(app_db) == 1


def test_sslmode_is_honoured(app_db, clean_redis, make_app):
    # The test server has no TLS: sslmode=require must fail rather than fall back.
    _app, client = make_app(ini(app_db, clean_redis, postgresql={"sslmode": "require"}))
    response = client.get("/")
    assert response.status_code == 503
    assert slow_calls(app_db) == 0
    _app, client = make_app(ini(app_db, clean_redis, postgresql={"sslmode": "prefer"}))
    assert client.get("/").status_code == 200


def test_statement_timeout_is_honoured(app_db, clean_redis, make_app):
    text = ini(app_db, clean_redis, postgresql={"statement_timeout": 0.2})
    _app, client = make_app(text)
    response = client.get("/")
    assert response.status_code == 503
    assert "Traceback" not in response.get_data(as_text=True)
    # The lock was released: the next request tries again rather than waiting.
    assert clean_redis.client().exists(LOCK_KEY) == 0


def test_healthz(app_db, clean_redis, make_app):
    _app, client = make_app(ini(app_db, clean_redis))
    live = client.get("/healthz/live")
    assert live.status_code == 200 and live.json == {"status": "ok"}
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200
    assert ready.json == {"status": "ok", "postgresql": "ok", "redis": "ok"}


def test_postgresql_verify_full_with_sslrootcert(postgresql_tls_server, clean_redis, make_app):
    pg = postgresql_tls_server
    install_slow_function(pg)
    verified = {"sslmode": "verify-full", "sslrootcert": pg.ca_file}
    _app, client = make_app(ini(pg, clean_redis, postgresql=verified))
    response = client.get("/")
    assert response.status_code == 200, response.get_data(as_text=True)
    rows = pg.execute(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
        "WHERE s.ssl AND a.application_name = 'cachestack_app'"
    )
    assert rows[0][0] >= 1  # the app's connection is encrypted

    # By name: the app looks the address up itself (hostaddr), and libpq still checks the
    # certificate against the name.
    clean_redis.client().flushall()
    by_name = ini(pg, clean_redis, postgresql=verified)
    by_name = by_name.replace(f"host = {pg.host}", "host = localhost", 1)
    _app, client = make_app(by_name)
    response = client.get("/")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "<strong>localhost</strong>" in response.get_data(as_text=True)

    # Without the CA, verify-full cannot verify the server: a miss answers 503.
    clean_redis.client().flushall()
    unverified = {"sslmode": "verify-full", "sslrootcert": None}
    _app, client = make_app(ini(pg, clean_redis, postgresql=unverified))
    assert client.get("/").status_code == 503


def test_redis_cluster_with_no_reachable_node_bypasses(app_db, redis_cluster, make_app):
    # RedisCluster raises RedisClusterException (not a RedisError) when no node
    # answers, as when every node of the sandbox's cache is stopped.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    nowhere = ini(app_db, redis_cluster, cluster=True, redis_extra={"port": port})
    _app, client = make_app(nowhere)
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["X-Cache"] == "BYPASS"
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200
    assert ready.get_json()["redis"].startswith("degraded: "), ready.get_json()
