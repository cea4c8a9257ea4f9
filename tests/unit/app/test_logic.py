"""Circuit breaker, keys, value encoding, TTL jitter and page rendering."""

from __future__ import annotations

import json
import time

import pytest
from cachestack_app.cache import CACHE_KEY, LOCK_KEY, CircuitBreaker
from cachestack_app.config import parse_config
from cachestack_app.db import query_timeout
from cachestack_app.page import html, render_page
from cachestack_app.service import PageService, encode_value

from tests.unit.app.web_app_role import render_template, render_var

CONFIG = parse_config("[postgresql]\nhost = db\n[redis]\nhost = c\n[cache]\nttl = 100\n")


def test_breaker_opens_on_failure_and_half_opens_after_cooldown():
    breaker = CircuitBreaker(cooldown=0.2)
    assert breaker.state == "closed" and breaker.allow()
    breaker.failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    time.sleep(0.25)
    assert breaker.state == "half-open"
    assert breaker.allow()  # one probe
    assert not breaker.allow()  # and only one at a time
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    time.sleep(0.25)
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed"
    assert breaker.allow() and breaker.allow()


def test_keys_are_versioned_and_share_a_cluster_slot():
    assert CACHE_KEY == "cachestack:{slow_version}:v2"  # tests/e2e/sandbox.py's constant
    assert LOCK_KEY.startswith(CACHE_KEY)
    tag = CACHE_KEY[CACHE_KEY.index("{") : CACHE_KEY.index("}") + 1]
    assert tag in LOCK_KEY


def test_value_round_trip_and_memo():
    service = PageService(CONFIG, db=None, cache=None)  # type: ignore[arg-type]
    raw = encode_value("PostgreSQL 15 <x>", 5.01, fresh_until=1_000_100.0, cached_at=1_000_000.0)
    assert json.loads(raw)["version"] == "PostgreSQL 15 <x>"
    entry = service._decode(raw)
    assert entry is not None
    assert entry.version_html == "PostgreSQL 15 &lt;x&gt;"
    assert (entry.cached_at, entry.fresh_until, entry.delta) == (1_000_000.0, 1_000_100.0, 5.01)
    assert service._decode(raw) is service._decode(raw)
    assert service._decode(b"not json") is None
    assert service._decode(b'{"other": 1}') is None
    # A value of the v1 shape (no fresh_until) is not an entry.
    assert service._decode(b'{"version": "x", "query_seconds": 1, "cached_at": 1}') is None


def test_ttl_jitter_stays_within_ten_percent():
    service = PageService(CONFIG, db=None, cache=None)  # type: ignore[arg-type]
    values = {service._fresh_ms() for _draw in range(200)}
    assert all(90_000 <= v <= 100_000 for v in values)
    assert len(values) > 10


@pytest.mark.parametrize("statement_timeout", [0.5, 5, 30, 600])
def test_waiters_outlast_the_lock_which_outlasts_the_query(statement_timeout):
    config = parse_config(
        f"[postgresql]\nhost = db\nstatement_timeout = {statement_timeout}\n[redis]\nhost = c\n"
    )
    service = PageService(config, db=None, cache=None)  # type: ignore[arg-type]
    longest_query_ms = query_timeout(config.postgresql) * 1000
    assert longest_query_ms > statement_timeout * 1000
    # The holder gives up on a hung database within query_timeout: its lock must not
    # expire first (a second request would run the query beside it), and by default the
    # waiters must not give up before the lock expires (they would answer 503 needlessly).
    assert service.lock_timeout * 1000 > service.lock_ttl_ms > longest_query_ms


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # the role's defaults
        {"web_app_db_statement_timeout": 0.5},
        {"web_app_db_statement_timeout": 600, "web_app_db_connect_timeout": 10},
        {"web_app_cache_lock_timeout": 2},
        {"web_app_cache_lock_timeout": 0.5, "web_app_db_statement_timeout": 90},
    ],
)
def test_the_roles_lock_wait_is_the_apps(overrides):
    # The app role checks gunicorn's timeout against __web_app_cache_lock_wait (preflight):
    # it must be the wait the app computes from the app.ini the role writes. Both sides come
    # from the role's own files, rendered by Ansible's templar.
    config = parse_config(render_template("app.ini.j2", **overrides))
    service = PageService(config, db=None, cache=None)  # type: ignore[arg-type]
    role_wait = float(render_var("__web_app_cache_lock_wait", **overrides))
    assert service.lock_timeout == pytest.approx(role_wait)


def test_explicit_lock_timeout_is_honoured_and_keeps_the_lock_ttl():
    default = PageService(CONFIG, db=None, cache=None)  # type: ignore[arg-type]
    config = parse_config("[postgresql]\nhost = db\n[redis]\nhost = c\n[cache]\nlock_timeout = 2\n")
    service = PageService(config, db=None, cache=None)  # type: ignore[arg-type]
    assert service.lock_timeout == 2
    assert service.lock_ttl_ms == default.lock_ttl_ms


def test_page_escapes_and_shows_everything():
    page = render_page(html("v<1>"), html("db&host"), 0.01234, "HIT").decode()
    assert "v&lt;1&gt;" in page and "db&amp;host" in page
    assert "0.0123 s" in page and "Cache: <strong>HIT</strong>" in page
