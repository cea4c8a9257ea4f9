"""Cache-aside for the slow query, with a Redis lock against stampedes."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import secrets
import time
from dataclasses import dataclass

from . import metrics
from .cache import Cache, CacheUnavailable
from .config import AppConfig
from .db import Database, DatabaseUnavailable, query_timeout
from .page import html

log = logging.getLogger("cachestack_app")


@dataclass
class Result:
    """What one page request got: the (escaped) version and how."""

    version_html: str
    outcome: str  # HIT, MISS or BYPASS
    cache_seconds: float = 0.0
    db_seconds: float = 0.0
    lock_wait_seconds: float = 0.0


class PageUnavailable(Exception):
    """The value is not cached and PostgreSQL did not answer."""

    def __init__(self, outcome: str, reason: str, result: Result):
        super().__init__(reason)
        self.outcome = outcome
        self.result = result


def encode_value(version: str, query_seconds: float) -> bytes:
    return json.dumps(
        {"version": version, "query_seconds": round(query_seconds, 4), "cached_at": time.time()}
    ).encode()


class PageService:
    """Get slow_version() the cheapest way that is still correct.

    HIT: the value is in Redis. MISS: it was not when the request came; one request
    (holding a lock in Redis, so across workers and hosts) runs the query and fills the
    cache while the others wait for it, up to ``lock_timeout``, and answer from the cache
    (or 503 if it is still running then: they never run the query beside it).
    BYPASS: Redis is down or the breaker is open; PostgreSQL answers directly.
    """

    def __init__(self, config: AppConfig, db: Database, cache: Cache):
        self.config = config
        self.db = db
        self.cache = cache
        self.ttl_ms = config.cache.ttl * 1000
        # The holder gives up on the query within query_timeout: the lock outlasts that,
        # and by default the waiters outlast the lock, so they never give up on a holder
        # that is still running the query (and a dead holder's lock expires first).
        self.lock_ttl_ms = int((query_timeout(config.postgresql) + 1) * 1000)
        self.lock_timeout = config.cache.lock_timeout or self.lock_ttl_ms / 1000 + 1
        self._memo: tuple[bytes, str] = (b"", "")

    # -- helpers --------------------------------------------------------------------------

    def _decode(self, raw: bytes) -> str | None:
        """The escaped version from a cached value (memoised: the value rarely changes)."""
        memo = self._memo
        if raw == memo[0]:
            return memo[1]
        try:
            version = json.loads(raw)["version"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed cache entry")
            return None
        escaped = html(str(version))
        self._memo = (raw, escaped)
        return escaped

    def _ttl_ms(self) -> int:
        # Up to 10% less than the TTL, so entries written together do not expire together.
        jitter = random.random() * 0.1  # noqa: S311 - spreading expiry, not cryptography
        return max(1, int(self.ttl_ms * (1 - jitter)))

    def _query(self, result: Result) -> str:
        try:
            version, seconds = self.db.slow_version()
        except DatabaseUnavailable as exc:
            metrics.DB_ERRORS.inc()
            log.warning("database unavailable: %s", exc)
            raise PageUnavailable(result.outcome, str(exc), result) from None
        finally:
            metrics.SLOW_QUERIES.inc()
        result.db_seconds += seconds
        return version

    def _from_cache(self, result: Result) -> Result | None:
        """``result`` answered from Redis: with the cached value, or BYPASS if Redis fails.
        None if Redis has no good value."""
        start = time.perf_counter()
        try:
            raw = self.cache.get()
        except CacheUnavailable as exc:
            result.cache_seconds += time.perf_counter() - start
            return self._bypass(result, str(exc))
        result.cache_seconds += time.perf_counter() - start
        version_html = None if raw is None else self._decode(raw)
        if version_html is None:
            return None
        result.version_html = version_html
        return result

    # -- the page -------------------------------------------------------------------------

    def fetch(self) -> Result:
        result = Result("", "HIT")
        answered = self._from_cache(result)
        if answered is not None:
            return answered
        result.outcome = "MISS"
        return self._fill(result)

    def _bypass(self, result: Result, reason: str) -> Result:
        log.debug("cache bypassed: %s", reason)
        result.outcome = "BYPASS"
        result.version_html = html(self._query(result))
        return result

    def _fill(self, result: Result) -> Result:
        token = secrets.token_hex(16)
        deadline = time.monotonic() + self.lock_timeout
        wait_started: float | None = None
        delay = 0.005
        while True:
            start = time.perf_counter()
            try:
                acquired = self.cache.acquire_lock(token, self.lock_ttl_ms)
            except CacheUnavailable as exc:
                return self._bypass(result, str(exc))
            finally:
                result.cache_seconds += time.perf_counter() - start
            if acquired:
                if wait_started is not None:
                    result.lock_wait_seconds = time.monotonic() - wait_started
                return self._compute(result, token)
            if wait_started is None:
                wait_started = time.monotonic()
                metrics.LOCK_WAITS.inc()
            time.sleep(delay)
            delay = min(delay * 1.5, 0.05)
            answered = self._from_cache(result)
            if answered is not None:
                answered.lock_wait_seconds = time.monotonic() - wait_started
                return answered
            if time.monotonic() > deadline:
                # Another request is still running the query (or its lock has not expired):
                # running it beside that one would pile onto a database already slow.
                result.lock_wait_seconds = time.monotonic() - wait_started
                metrics.LOCK_TIMEOUTS.inc()
                reason = f"waited {self.lock_timeout:.1f} s for the cache lock"
                log.warning("%s; another request still holds it", reason)
                raise PageUnavailable(result.outcome, reason, result)

    def _compute(self, result: Result, token: str) -> Result:
        try:
            # Another request may have filled the cache and released the lock between our
            # GET and our SET NX (seen under CPU load as 2 slow queries for 50 requests).
            answered = self._from_cache(result)
            if answered is not None:
                return answered
            version = self._query(result)
            start = time.perf_counter()
            try:
                self.cache.set(encode_value(version, result.db_seconds), self._ttl_ms())
            except CacheUnavailable as exc:
                log.warning("could not store the value in redis: %s", exc)
            result.cache_seconds += time.perf_counter() - start
            result.version_html = html(version)
            return result
        finally:
            with contextlib.suppress(CacheUnavailable):  # else it expires on its own
                self.cache.release_lock(token)
