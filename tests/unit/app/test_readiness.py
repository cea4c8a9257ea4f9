"""/healthz/ready: 503 only when PostgreSQL does not answer, and a body that names each
dependency's state and why it is not ok, without secrets. Fakes stand in for the
database and Redis; the Cache and its breaker are the real ones."""

from __future__ import annotations

from typing import Any

import pytest
from cachestack_app.app import READINESS_REASON_CHARS, _build_flask, readiness_reason
from cachestack_app.cache import Cache, CircuitBreaker
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
