"""Issue 23 against real PostgreSQL 17 and Valkey 8 (standalone and cluster): a stale entry
served at once while exactly one refresh runs (two gunicorns of two workers each), XFetch
refreshing before expiry under steady reads, the near cache, namespaced keys, and a stale
entry served while PostgreSQL is stopped."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from cachestack_app.cache import CACHE_KEY, LOCK_KEY, cache_key
from cachestack_app.service import encode_value

from tests.integration.app.conftest import (
    SLOW_SECONDS,
    get,
    ini,
    install_slow_function,
    metric,
    slow_calls,
)

# The refresh in the gunicorn test runs this long, so the stale requests overlap it.
REFRESH_SECONDS = 3.0


def slow_function(db: Any, seconds: float, version: str = "version()") -> None:
    db.execute(
        "CREATE OR REPLACE FUNCTION slow_version() RETURNS text LANGUAGE plpgsql AS $$ BEGIN "
        f"INSERT INTO slow_version_calls DEFAULT VALUES; PERFORM pg_sleep({seconds}); "
        f"RETURN {version}; END $$"
    )


def running_slow_queries(db: Any) -> int:
    rows = db.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
        "AND query = 'SELECT slow_version()'"
    )
    return int(rows[0][0])


def metrics_sum(urls: list[str], name: str) -> float:
    return sum(metric(get(url + "/metrics").body, name) for url in urls)


def wait_for_hit(fetch: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        page = fetch()
        if page.headers["X-Cache"] == "HIT":
            return page
        assert page.headers["X-Cache"] == "STALE", page.headers
        assert time.monotonic() < deadline, "the refresh never stored a fresh value"
        time.sleep(0.05)


@pytest.fixture(params=["standalone", "cluster"])
def valkey(request: pytest.FixtureRequest) -> tuple[Any, bool]:
    """Each test on a standalone Valkey and on the cluster (TLS, AUTH), the sandbox's shape."""
    if request.param == "standalone":
        server = request.getfixturevalue("clean_redis")
    else:
        server = request.getfixturevalue("redis_cluster")
    client = server.client()
    client.flushall()
    client.close()
    return server, request.param == "cluster"


def test_a_stale_entry_is_served_at_once_while_exactly_one_refresh_runs(
    app_db, valkey, gunicorn_factory
):
    """Two gunicorns (two app processes of two workers each, as on two web hosts) share
    the cache: past the TTL every request gets the stale page at once, and one query runs."""
    server, cluster = valkey
    slow_function(app_db, REFRESH_SECONDS)
    text = ini(app_db, server, ttl=2, cluster=cluster, cache={"stale_ttl": 60, "beta": 0})
    hosts = [gunicorn_factory(text), gunicorn_factory(text)]
    urls = [h.url for h in hosts]
    assert all(h.settings()["workers"] >= 2 for h in hosts)

    requests = 24

    def burst() -> list[Any]:
        barrier = threading.Barrier(requests)
        pages: list[Any] = [None] * requests

        def visitor(index: int) -> None:
            barrier.wait()
            pages[index] = get(urls[index % 2] + "/", timeout=30)

        threads = [threading.Thread(target=visitor, args=(i,)) for i in range(requests)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return pages

    first = get(urls[0] + "/")
    filled = time.monotonic()
    assert (first.status, first.headers["X-Cache"]) == (200, "MISS")
    # Every worker connects to the cache (cluster topology, TLS) while the page is fresh.
    assert {p.headers["X-Cache"] for p in burst()} == {"HIT"}
    time.sleep(max(0.0, filled + 2.1 - time.monotonic()))  # past the TTL: stale now

    pages = burst()
    running: list[int] = []
    for _sample in range(10):  # the refresh is under way: one query, not one per process
        running.append(running_slow_queries(app_db))
        time.sleep(0.05)

    assert [p.status for p in pages] == [200] * requests
    assert {p.headers["X-Cache"] for p in pages} == {"STALE"}, [p.headers for p in pages]
    # At once: nobody waited for the two-second query.
    slowest = max(p.seconds for p in pages)
    assert slowest < REFRESH_SECONDS / 2, f"a stale page took {slowest:.2f} s"
    assert all(int(p.headers["Age"]) >= 1 for p in pages)
    assert first.body.split("Database version")[1][:60] in pages[0].body
    assert max(running) == 1, running

    page = wait_for_hit(lambda: get(urls[1] + "/"))
    assert int(page.headers["Age"]) <= 1
    assert slow_calls(app_db) == 2  # the fill and exactly one refresh
    refreshes = 'cachestack_cache_refreshes_started_total{trigger="stale"}'
    assert metrics_sum(urls, refreshes) == 1
    assert metrics_sum(urls, 'cachestack_cache_refreshes_finished_total{trigger="stale"}') == 1
    assert metrics_sum(urls, "cachestack_cache_stale_total") >= requests
    assert server.client().exists(LOCK_KEY) == 0


def test_xfetch_refreshes_before_expiry_under_steady_reads(app_db, valkey, make_app):
    """stale_ttl 0, so an entry that expired would be a MISS: reading steadily over
    several TTLs, only the first request misses; the refreshes started early."""
    server, cluster = valkey
    text = ini(app_db, server, ttl=2, cluster=cluster, cache={"stale_ttl": 0, "beta": 2})
    _app, client = make_app(text)
    early_name = 'cachestack_cache_refreshes_started_total{trigger="early"}'
    stale_name = 'cachestack_cache_refreshes_started_total{trigger="stale"}'
    before = client.get("/metrics").get_data(as_text=True)  # counters are per process
    outcomes = []
    end = time.monotonic() + 7  # three and more TTLs
    while time.monotonic() < end:
        page = client.get("/")
        assert page.status_code == 200
        outcomes.append(page.headers["X-Cache"])
        time.sleep(0.02)
    assert outcomes[0] == "MISS"
    assert set(outcomes[1:]) == {"HIT"}, [o for o in outcomes if o != "HIT"]
    text = client.get("/metrics").get_data(as_text=True)
    early = metric(text, early_name) - metric(before, early_name)
    assert early >= 3
    time.sleep(SLOW_SECONDS + 0.3)  # the last refresh ends
    assert slow_calls(app_db) == 1 + early  # one query per refresh, one refresh at a time
    assert metric(text, stale_name) == metric(before, stale_name)


def redis_gets(server: Any) -> int:
    stats = server.client().info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


def test_the_near_cache_serves_without_redis_and_expires_on_time(app_db, clean_redis, make_app):
    # Two seconds: room for the 50 requests below on a loaded machine.
    _app, client = make_app(ini(app_db, clean_redis, ttl=30, cache={"local_ttl": 2}))
    assert client.get("/").headers["X-Cache"] == "MISS"
    before = redis_gets(clean_redis)
    local_before = metric(
        client.get("/metrics").get_data(as_text=True), "cachestack_cache_local_hits_total"
    )
    for _request in range(50):
        page = client.get("/")
        assert page.headers["X-Cache"] == "HIT-LOCAL"
        assert "Cache: <strong>HIT-LOCAL</strong>" in page.get_data(as_text=True)
    assert redis_gets(clean_redis) == before  # counted by Valkey itself: no GET at all
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "cachestack_cache_local_hits_total") == local_before + 50

    # Another host stores a new value: this worker sees it only once its copy expires.
    now = time.time()
    changed = encode_value("changed elsewhere", 0.5, now + 30, cached_at=now)
    clean_redis.client().set(CACHE_KEY, changed, px=60_000)
    stored_at = time.monotonic()
    page = client.get("/")
    assert page.headers["X-Cache"] == "HIT-LOCAL"
    assert "changed elsewhere" not in page.get_data(as_text=True)
    time.sleep(max(0.0, stored_at + 2.05 - time.monotonic()))
    page = client.get("/")
    assert page.headers["X-Cache"] == "HIT"
    assert "changed elsewhere" in page.get_data(as_text=True)
    assert redis_gets(clean_redis) == before + 1
    assert client.get("/").headers["X-Cache"] == "HIT-LOCAL"


def test_the_near_cache_never_serves_past_the_ttl(app_db, clean_redis, make_app):
    text = ini(app_db, clean_redis, ttl=1, cache={"local_ttl": 30, "beta": 0})
    _app, client = make_app(text)
    assert client.get("/").headers["X-Cache"] == "MISS"
    assert client.get("/").headers["X-Cache"] == "HIT-LOCAL"
    time.sleep(1.1)
    assert client.get("/").headers["X-Cache"] == "STALE"
    # The refresh that started ends here, not in the next test's cache; the worker that
    # refreshed keeps the new value locally.
    deadline = time.monotonic() + 10
    while client.get("/").headers["X-Cache"] == "STALE":
        assert time.monotonic() < deadline, "the refresh never stored a fresh value"
        time.sleep(0.05)
    assert client.get("/").headers["X-Cache"] == "HIT-LOCAL"


def test_namespaced_keys_do_not_collide(app_db, clean_redis, make_app):
    _app_a, stack_a = make_app(ini(app_db, clean_redis, cache={"namespace": "stack-a"}))
    first_a = stack_a.get("/")
    assert first_a.headers["X-Cache"] == "MISS"
    assert "PostgreSQL 17" in first_a.get_data(as_text=True)

    slow_function(app_db, SLOW_SECONDS, version="'stack b''s database'")
    _app_b, stack_b = make_app(ini(app_db, clean_redis, cache={"namespace": "stack-b"}))
    first_b = stack_b.get("/")
    assert first_b.headers["X-Cache"] == "MISS"  # not stack-a's entry
    assert "stack b&#x27;s database" in first_b.get_data(as_text=True)

    again_a = stack_a.get("/")
    assert again_a.headers["X-Cache"] == "HIT"
    assert "PostgreSQL 17" in again_a.get_data(as_text=True)
    keys = {k.decode() for k in clean_redis.client().keys("*")}
    assert keys == {cache_key("stack-a"), cache_key("stack-b")}
    assert slow_calls(app_db) == 2


def test_an_entry_of_the_previous_shape_is_not_served(app_db, clean_redis, make_app):
    # What the release before wrote (no fresh_until): a deploy must not serve that shape.
    old = b'{"version": "old shape", "query_seconds": 5.0, "cached_at": 1}'
    clean_redis.client().set("cachestack:{slow_version}:v1", old, px=60_000)
    _app, client = make_app(ini(app_db, clean_redis))
    page = client.get("/")
    assert page.headers["X-Cache"] == "MISS"
    assert "old shape" not in page.get_data(as_text=True)


def test_postgresql_stopped_a_stale_entry_is_served_not_503(
    postgresql_private_server, redis_private_server, make_app
):
    pg = postgresql_private_server
    install_slow_function(pg)
    text = ini(pg, redis_private_server, ttl=1, cache={"stale_ttl": 60, "beta": 0})
    _app, client = make_app(text)
    assert client.get("/").headers["X-Cache"] == "MISS"
    pg.stop()
    time.sleep(1.1)

    def stale_and_failed() -> tuple[float, float]:
        text = client.get("/metrics").get_data(as_text=True)
        return (
            metric(text, "cachestack_cache_stale_total"),
            metric(text, 'cachestack_cache_refreshes_failed_total{trigger="stale"}'),
        )

    stale_before, failed_before = stale_and_failed()
    deadline = time.monotonic() + 10
    served = 0
    while True:
        page = client.get("/")
        assert page.status_code == 200, page.get_data(as_text=True)[:200]
        assert page.headers["X-Cache"] == "STALE"
        assert "PostgreSQL 17" in page.get_data(as_text=True)
        served += 1
        if stale_and_failed()[1] > failed_before:
            break
        assert time.monotonic() < deadline, "the refresh never failed"
        time.sleep(0.1)
    stale_after, _failed = stale_and_failed()
    assert stale_after == stale_before + served  # each stale page counted
    assert redis_private_server.client().exists(LOCK_KEY) == 0  # the failed refresh let go
    assert client.get("/healthz/ready").status_code == 503

    pg.start()  # the next refresh (after a second's pause) succeeds
    page = wait_for_hit(lambda: client.get("/"))
    assert page.status_code == 200
    assert slow_calls(pg) == 2
