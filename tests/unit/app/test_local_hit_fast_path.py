"""The near cache's fast path (CachestackApp._local_hit): a HIT-LOCAL answered on it gives the
same status, headers, page and metrics as the general path (index() through
PageService.fetch() and _respond()) gives the same entry. No servers: the entry is put in
the near cache by hand, so neither Redis nor PostgreSQL is called."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from cachestack_app.app import CachestackApp, _build_flask
from cachestack_app.cache import Cache, CircuitBreaker
from cachestack_app.config import parse_config
from cachestack_app.db import Database
from cachestack_app.page import html
from cachestack_app.service import Entry
from prometheus_client import REGISTRY
from werkzeug.test import Client

# Nothing listens on these ports: a Redis or PostgreSQL call would fail the test.
INI = (
    "[postgresql]\nhost = db.example\nport = 9\ndbname = app\nuser = app\npassword = x\n"
    "sslmode = disable\n\n[redis]\nhost = 127.0.0.1\nport = 9\nsocket_timeout = 0.1\n\n"
    "[cache]\nttl = 300\nbeta = 0\nlocal_ttl = {local_ttl}\nnamespace = fastpath\n"
)
ELAPSED = re.compile(rb"Elapsed time: <strong>[0-9.]+ s</strong>")


def build(local_ttl: float = 60) -> CachestackApp:
    config = parse_config(INI.format(local_ttl=local_ttl))
    db = Database(config.postgresql)
    cache = Cache(config.redis, CircuitBreaker(), namespace=config.cache.namespace)
    return CachestackApp(config, db, cache, _build_flask(db, cache))


def put(app: CachestackApp, version: str, age: float = 7.4) -> Entry:
    now = time.time()
    entry = Entry(b"raw " + version.encode(), html(version), now - age, now + 300, 0.01)
    assert app.service.near is not None
    app.service.near.put(app.service.key, entry, now)
    return entry


def samples(method: str = "GET") -> dict[str, float]:
    """The series a HIT-LOCAL moves (this process's registry: no multiprocess dir)."""

    def value(name: str, labels: dict[str, str] | None = None) -> float:
        return REGISTRY.get_sample_value(name, labels or {}) or 0.0

    return {
        "local_hits": value("cachestack_cache_local_hits_total"),
        "hits": value("cachestack_cache_hits_total"),
        "requests": value(
            "cachestack_http_requests_total", {"route": "/", "method": method, "status": "200"}
        ),
        "latency_count": value("cachestack_http_request_duration_seconds_count", {"route": "/"}),
        "latency_fast": value(
            "cachestack_http_request_duration_seconds_bucket", {"route": "/", "le": "0.001"}
        ),
    }


def request(app: CachestackApp, method: str = "GET") -> tuple[Any, dict[str, float]]:
    before = samples(method)
    response = Client(app).open("/", method=method)
    after = samples(method)
    return response, {key: after[key] - before[key] for key in after}


class GeneralPath:
    """Sends index() down the general path once: its own near_hit() call answers None,
    so fetch() (which asks the near cache again) answers HIT-LOCAL through _respond()."""

    def __init__(self, app: CachestackApp):
        self.app = app
        self.near_hit = app.service.near_hit
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        return None if self.calls == 1 else self.near_hit()


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_fast_path_answers_as_the_general_path_does(method, monkeypatch):
    app = build()
    put(app, "PostgreSQL 17 <on> x86_64 & more")
    fast, fast_counts = request(app, method)

    general = GeneralPath(app)
    monkeypatch.setattr(app.service, "near_hit", general)
    slow, slow_counts = request(app, method)
    assert general.calls == 2  # the general path was taken, and it read the near cache

    assert fast.status == slow.status == "200 OK"
    assert fast.headers["X-Cache"] == "HIT-LOCAL"
    assert fast.headers["Age"] == "7"
    # Every header, in order; the Content-Length compared below with the body.
    assert list(fast.headers.items()) == list(slow.headers.items())
    assert [name for name, _value in fast.headers.items()] == [
        "Content-Type",
        "Content-Length",
        "Cache-Control",
        "X-Cache",
        "Server-Timing",
        "Age",
    ]
    # The same page but for the elapsed time it measured.
    if method == "GET":
        assert ELAPSED.search(fast.data)
        assert ELAPSED.sub(b"", fast.data) == ELAPSED.sub(b"", slow.data)
        assert b"PostgreSQL 17 &lt;on&gt; x86_64 &amp; more" in fast.data
        assert b"Cache: <strong>HIT-LOCAL</strong>" in fast.data
        assert int(fast.headers["Content-Length"]) == len(fast.data)
    else:
        assert fast.data == slow.data == b""
        assert int(fast.headers["Content-Length"]) > 0
    # The same metrics: a local hit, a request of / answered 200, one latency observed.
    expected = {
        "local_hits": 1,
        "hits": 0,
        "requests": 1,
        "latency_count": 1,
        "latency_fast": 1,
    }
    assert fast_counts == slow_counts == expected


def test_a_new_value_is_served_at_once_and_its_age_counted(monkeypatch):
    app = build()
    put(app, "first version", age=1.2)
    first, _counts = request(app)
    assert b"first version" in first.data
    assert first.headers["Age"] == "1"
    # A refresh puts a new entry in the near cache: its page, not the old one's bytes.
    put(app, "second version", age=42.9)
    second, counts = request(app)
    assert second.headers["X-Cache"] == "HIT-LOCAL"
    assert b"second version" in second.data
    assert b"first version" not in second.data
    assert second.headers["Age"] == "42"
    assert int(second.headers["Content-Length"]) == len(second.data)
    assert counts["local_hits"] == 1


def test_without_a_near_copy_the_fast_path_is_not_taken():
    app = build(local_ttl=0)  # near cache off
    assert app.service.near is None
    assert app.service.near_hit() is None
    app = build()
    assert app.service.near_hit() is None  # on, but nothing held yet
    entry = put(app, "v")
    hit = app.service.near_hit()
    assert hit is not None
    assert hit[0] is entry
    assert abs(hit[1] - time.time()) < 5
