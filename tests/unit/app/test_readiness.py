"""/healthz/ready: 503 only when PostgreSQL does not answer, and a body that names each
dependency's state and why it is not ok, without secrets. Fakes stand in for the
database and Redis; the Cache and its breaker are the real ones."""

from __future__ import annotations

from typing import Any

import pytest
from cachestack_app.app import READINESS_REASON_CHARS, _build_flask, readiness_reason
from cachestack_app.cache import Cache, CircuitBreaker, cluster_info_problems
from cachestack_app.config import parse_config
from cachestack_app.db import DatabaseUnavailable

DB_PASSWORD = "db-secret-0123456789"
TOKEN = "cache-token-0123456789"
CONFIG = parse_config(
    f"[postgresql]\nhost = db\npassword = {DB_PASSWORD}\n[redis]\nhost = c\npassword = {TOKEN}\n"
)


class FakeDatabase:
    def __init__(self, error: str | None = None):
        self.config = CONFIG.postgresql
        self.error = error

    def ping(self) -> None:
        if self.error:
            raise DatabaseUnavailable(self.error)


class FakeRedis:
    """What Cache calls: ping answers PONG or raises the error given."""

    def __init__(self, error: Exception | None = None):
        self.error = error
        self.pings = 0

    def ping(self) -> bool:
        self.pings += 1
        if self.error:
            raise self.error
        return True


def client_for(db: FakeDatabase, redis_client: FakeRedis) -> tuple[Any, Cache]:
    cache = Cache(CONFIG.redis, CircuitBreaker(cooldown=60))
    cache._get_client = lambda: redis_client  # type: ignore[method-assign]
    return _build_flask(db, cache).test_client(), cache  # type: ignore[arg-type]


def test_all_ok():
    client, _cache = client_for(FakeDatabase(), FakeRedis())
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200
    assert ready.json == {"status": "ok", "postgresql": "ok", "redis": "ok"}


def test_a_broken_cache_is_200_but_named_with_its_reason():
    import redis

    refused = FakeRedis(redis.AuthenticationError("invalid username-password pair"))
    client, cache = client_for(FakeDatabase(), refused)
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200  # a load balancer keeps the host for a cache blip
    assert ready.json == {
        "status": "degraded",
        "postgresql": "ok",
        "redis": "degraded: AuthenticationError: invalid username-password pair",
    }
    # The breaker now skips Redis: the body still says what broke it.
    assert cache.breaker.state == "open"
    again = client.get("/healthz/ready")
    assert refused.pings == 1
    assert again.status_code == 200
    assert again.json["redis"] == (
        "degraded: circuit breaker open after AuthenticationError: invalid username-password pair"
    )


def test_a_database_that_does_not_answer_is_503_with_its_reason():
    client, _cache = client_for(FakeDatabase("connection refused"), FakeRedis())
    ready = client.get("/healthz/ready")
    assert ready.status_code == 503
    assert ready.json == {
        "status": "unavailable",
        "postgresql": "unavailable: connection refused",
        "redis": "ok",
    }


@pytest.mark.parametrize("secret", [DB_PASSWORD, TOKEN])
def test_no_secret_and_no_long_reason_in_the_body(secret):
    import redis

    said = f"failed with password {secret}\non a second line " + "x" * 500
    client, _cache = client_for(FakeDatabase(said), FakeRedis(redis.ConnectionError(said)))
    ready = client.get("/healthz/ready")
    text = ready.get_data(as_text=True)
    assert ready.status_code == 503
    assert secret not in text and "***" in text
    for key in ("postgresql", "redis"):
        reason = ready.json[key].split(": ", 1)[1]
        assert "\n" not in reason and len(reason) <= READINESS_REASON_CHARS, reason
        assert reason.endswith("...")


def test_reason_is_one_short_line():
    assert readiness_reason("  a\n b  ", ()) == "a b"
    assert readiness_reason("", ()) == "unknown"
    assert readiness_reason("token abc", ["abc", None, ""]) == "token ***"


CLUSTER_CONFIG = parse_config(
    f"[postgresql]\nhost = db\npassword = {DB_PASSWORD}\n"
    f"[redis]\nhost = c\npassword = {TOKEN}\ncluster = true\n"
)
INFO_OK = "cluster_state:ok\r\ncluster_slots_ok:16384\r\ncluster_slots_pfail:0\r\n"


class FakeNode:
    def __init__(self, name: str, up: bool = True):
        self.name = name
        self.up = up


class FakeCluster:
    """What Cache.health calls on a RedisCluster: its primaries, and PING / CLUSTER INFO
    sent to one of them."""

    def __init__(self, nodes: list[FakeNode], info: str = INFO_OK, after_reread=None):
        self.nodes = nodes
        self.info = info
        # The primaries a fresh read of the topology finds (None: the same as before).
        self.after_reread = after_reread
        self.nodes_manager = self

    def initialize(self) -> None:
        if self.after_reread is not None:
            self.nodes = self.after_reread

    def get_primaries(self) -> list[FakeNode]:
        return self.nodes

    def get_nodes(self) -> list[FakeNode]:
        return self.nodes

    def close(self) -> None:
        pass

    def execute_command(self, *args: Any, target_nodes: FakeNode) -> Any:
        import redis

        if not target_nodes.up:
            raise redis.ConnectionError(f"Error 111 connecting to {target_nodes.name}")
        return True if args[0] == "PING" else self.info


def cluster_client_for(db: FakeDatabase, fake: FakeCluster) -> tuple[Any, Cache]:
    cache = Cache(CLUSTER_CONFIG.redis, CircuitBreaker(cooldown=60))
    cache._shared_client = lambda: fake  # type: ignore[method-assign]
    return _build_flask(db, cache).test_client(), cache  # type: ignore[arg-type]


def test_a_whole_cluster_is_ok_as_before():
    nodes = [FakeNode("a:1"), FakeNode("b:2"), FakeNode("c:3")]
    client, _cache = cluster_client_for(FakeDatabase(), FakeCluster(nodes))
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200
    assert ready.json == {"status": "ok", "postgresql": "ok", "redis": "ok"}


def test_a_cluster_partly_down_is_degraded_and_leaves_the_breaker_closed():
    nodes = [FakeNode("a:1"), FakeNode("b:2", up=False), FakeNode("c:3")]
    info = "cluster_state:fail\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:5461\r\n"
    client, cache = cluster_client_for(FakeDatabase(), FakeCluster(nodes, info))
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200  # the app still serves, from PostgreSQL where it must
    assert ready.json == {
        "status": "degraded",
        "postgresql": "ok",
        "redis": "degraded: 1 of 3 primaries do not answer; cluster_state fail,"
        " cluster_slots_fail 5461",
    }
    # The page's own slot may be served: readiness does not make the page bypass.
    assert cache.breaker.state == "closed"


def test_a_node_that_left_the_cluster_is_not_a_silent_primary_once_the_table_is_reread():
    # After 3 -> 2 shards the client's table still holds the node that left (stopped):
    # readiness reads the topology again before it calls the cache degraded.
    left = [FakeNode("a:1"), FakeNode("b:2"), FakeNode("gone:3", up=False)]
    fake = FakeCluster(left, after_reread=left[:2])
    client, cache = cluster_client_for(FakeDatabase(), fake)
    ready = client.get("/healthz/ready")
    assert ready.json == {"status": "ok", "postgresql": "ok", "redis": "ok"}
    assert cache.breaker.state == "closed"


def test_a_cluster_that_says_not_ok_is_degraded_even_when_every_primary_answers():
    nodes = [FakeNode("a:1"), FakeNode("b:2")]
    info = {"cluster_state": "ok", "cluster_slots_pfail": "5461", "cluster_slots_fail": "0"}
    fake = FakeCluster(nodes, info)  # type: ignore[arg-type]
    client, _cache = cluster_client_for(FakeDatabase(), fake)
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200
    assert ready.json["status"] == "degraded"
    assert ready.json["redis"] == "degraded: cluster_slots_pfail 5461"


def test_no_primary_answering_opens_the_breaker_as_a_failed_ping_does():
    nodes = [FakeNode("a:1", up=False), FakeNode("b:2", up=False)]
    client, cache = cluster_client_for(FakeDatabase(), FakeCluster(nodes))
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200
    assert ready.json["status"] == "degraded"
    assert ready.json["redis"] == "degraded: ConnectionError: Error 111 connecting to b:2"
    assert cache.breaker.state == "open"


def test_the_database_down_is_503_whatever_the_cluster_says():
    nodes = [FakeNode("a:1"), FakeNode("b:2", up=False)]
    client, _cache = cluster_client_for(FakeDatabase("connection refused"), FakeCluster(nodes))
    ready = client.get("/healthz/ready")
    assert ready.status_code == 503
    assert ready.json == {
        "status": "unavailable",
        "postgresql": "unavailable: connection refused",
        "redis": "degraded: 1 of 2 primaries do not answer",
    }


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (INFO_OK, ""),
        (INFO_OK.encode(), ""),
        ({"cluster_state": "ok"}, ""),
        ("cluster_state:fail\r\n", "cluster_state fail"),
        ({}, "cluster_state unknown"),
        (None, "no cluster info"),
    ],
)
def test_cluster_info_problems(info, expected):
    assert cluster_info_problems(info) == expected


def test_readiness_takes_no_half_open_probe_and_closes_the_breaker_only_when_whole():
    import time

    nodes = [FakeNode("a:1"), FakeNode("b:2", up=False)]
    client, cache = cluster_client_for(FakeDatabase(), FakeCluster(nodes))
    cache.breaker.failure()  # a page's command failed: open for the cooldown
    cache.last_error = "ConnectionError: Error 111 connecting to b:2"
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200
    assert ready.json["redis"] == (
        "degraded: circuit breaker open after ConnectionError: Error 111 connecting to b:2"
    )
    cache.breaker._open_until = time.monotonic() - 1  # the cooldown is over: half-open
    ready = client.get("/healthz/ready")
    assert ready.json["redis"] == "degraded: 1 of 2 primaries do not answer"
    assert cache.breaker.state == "half-open"
    assert cache.breaker.allow()  # the probe is left to the page's next command
    cache.breaker.failure()
    cache.breaker._open_until = time.monotonic() - 1
    nodes[1].up = True
    ready = client.get("/healthz/ready")
    assert ready.json == {"status": "ok", "postgresql": "ok", "redis": "ok"}
    assert cache.breaker.state == "closed"
