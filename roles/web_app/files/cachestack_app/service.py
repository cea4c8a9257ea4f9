"""Cache-aside for the slow query: a Redis lock against stampedes, stale-while-revalidate,
XFetch early refresh and an optional per-worker near cache."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from . import metrics
from .cache import Cache, CacheUnavailable, cache_key
from .config import AppConfig
from .db import Database, DatabaseUnavailable, query_timeout
from .page import html

log = logging.getLogger("cachestack_app")

# The near cache holds the page's entry; the bound keeps it small whatever comes later.
LOCAL_MAX_ENTRIES = 64
# After another worker or host was found holding the lock, this process tries to start
# a refresh again no sooner than this (the holder is refreshing; the entry is served).
REFRESH_RETRY_SECONDS = 0.2
# After a refresh failed (the database did not answer), no new one from this process for
# this long: stale pages keep being served meanwhile, without a query per request.
REFRESH_RETRY_AFTER_FAILURE_SECONDS = 1.0


@dataclass
class Result:
    """What one page request got: the (escaped) version and how."""

    version_html: str
    outcome: str  # HIT, HIT-LOCAL, STALE, MISS or BYPASS
    cache_seconds: float = 0.0
    db_seconds: float = 0.0
    lock_wait_seconds: float = 0.0
    # Seconds since the value was computed (the HTTP Age header); None: computed now.
    age: float | None = None


@dataclass(frozen=True)
class Entry:
    """A decoded cached value. Times are wall-clock (time.time()): every host reads them."""

    raw: bytes
    version_html: str
    cached_at: float
    fresh_until: float
    delta: float  # seconds the query took when it was last computed (XFetch's delta)


class PageUnavailable(Exception):
    """The value is not cached and PostgreSQL did not answer."""

    def __init__(self, outcome: str, reason: str, result: Result):
        super().__init__(reason)
        self.outcome = outcome
        self.result = result


def encode_value(
    version: str, query_seconds: float, fresh_until: float, cached_at: float | None = None
) -> bytes:
    """The cached value: the version, when it stops being fresh, and what it cost."""
    return json.dumps(
        {
            "version": version,
            "query_seconds": round(query_seconds, 4),
            "cached_at": time.time() if cached_at is None else cached_at,
            "fresh_until": fresh_until,
        }
    ).encode()


def xfetch_due(entry: Entry, now: float, beta: float, draw: float) -> bool:
    """XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015): refresh a fresh entry early
    when ``now - delta * beta * log(draw) >= fresh_until``, ``draw`` uniform in (0, 1].
    The chance rises as expiry nears, faster for a costly recompute (delta) or a larger
    beta; under steady reads one request refreshes before the entry expires."""
    if beta <= 0 or entry.delta <= 0:
        return False
    return now - entry.delta * beta * math.log(draw) >= entry.fresh_until


class NearCache:
    """Per-worker entries for at most ``ttl`` seconds (and never past their freshness),
    at most ``max_entries`` of them (oldest written go first)."""

    def __init__(self, ttl: float, max_entries: int = LOCAL_MAX_ENTRIES):
        self.ttl = ttl
        self.max_entries = max_entries
        self._items: OrderedDict[str, tuple[Entry, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Entry | None:
        item = self._items.get(key)
        if item is None or time.monotonic() >= item[1]:
            return None
        return item[0]

    def put(self, key: str, entry: Entry, now: float) -> None:
        life = min(self.ttl, entry.fresh_until - now)
        if life <= 0:
            return
        expires = time.monotonic() + life
        with self._lock:
            self._items[key] = (entry, expires)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class PageService:
    """Get slow_version() the cheapest way that is still correct.

    HIT: a fresh value is in Redis. HIT-LOCAL: in this worker's near cache (local_ttl).
    STALE: the value is past its ttl but within stale_ttl: served at once while one
    request, in the background of its worker, refreshes it under the Redis lock. A fresh
    value near its expiry is refreshed the same way ahead of time (XFetch).
    MISS: nothing was cached; one request (holding a lock in Redis, so across workers and
    hosts) runs the query and fills the cache while the others wait for it, up to
    ``lock_timeout``, and answer from the cache (or 503 if it is still running then: they
    never run the query beside it).
    BYPASS: Redis is down or the breaker is open; PostgreSQL answers directly.
    """

    def __init__(self, config: AppConfig, db: Database, cache: Cache):
        self.config = config
        self.db = db
        self.cache = cache
        self.key = cache_key(config.cache.namespace)
        self.ttl_ms = config.cache.ttl * 1000
        stale_ttl = config.cache.stale_ttl
        self.stale_ttl = 0 if stale_ttl is None else stale_ttl
        self.beta = config.cache.beta
        self.near = NearCache(config.cache.local_ttl) if config.cache.local_ttl > 0 else None
        # The holder gives up on the query within query_timeout: the lock outlasts that,
        # and by default the waiters outlast the lock, so they never give up on a holder
        # that is still running the query (and a dead holder's lock expires first).
        self.lock_ttl_ms = int((query_timeout(config.postgresql) + 1) * 1000)
        self.lock_timeout = config.cache.lock_timeout or self.lock_ttl_ms / 1000 + 1
        self._memo: Entry | None = None
        # The keys this process is refreshing (at most one refresh per key), and when it
        # may try again after finding the lock held elsewhere or a refresh failing.
        self._refreshing: set[str] = set()
        self._refresh_not_before = 0.0
        self._refresh_guard = threading.Lock()

    # -- helpers --------------------------------------------------------------------------

    def _decode(self, raw: bytes) -> Entry | None:
        """The entry of a cached value (memoised: the value rarely changes)."""
        memo = self._memo
        if memo is not None and raw == memo.raw:
            return memo
        try:
            value = json.loads(raw)
            entry = Entry(
                raw=raw,
                version_html=html(str(value["version"])),
                cached_at=float(value["cached_at"]),
                fresh_until=float(value["fresh_until"]),
                delta=max(0.0, float(value["query_seconds"])),
            )
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed cache entry")
            return None
        self._memo = entry
        return entry

    def _fresh_ms(self) -> int:
        # Up to 10% less than the TTL, so entries written together do not expire together.
        jitter = random.random() * 0.1  # noqa: S311 - spreading expiry, not cryptography
        return max(1, int(self.ttl_ms * (1 - jitter)))

    def _read(self, result: Result) -> Entry | None:
        """The entry in Redis, or None; CacheUnavailable if Redis fails."""
        start = time.perf_counter()
        try:
            raw = self.cache.get()
        finally:
            result.cache_seconds += time.perf_counter() - start
        return None if raw is None else self._decode(raw)

    def _servable(self, entry: Entry | None, now: float) -> bool:
        return entry is not None and now < entry.fresh_until + self.stale_ttl

    def _answer(self, result: Result, entry: Entry, now: float, outcome: str) -> Result:
        result.version_html = entry.version_html
        result.outcome = outcome
        result.age = max(0.0, now - entry.cached_at)
        return result

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

    def _store(self, version: str, seconds: float) -> Entry:
        """Write a new value (fresh for the TTL, kept stale_ttl more); raises
        CacheUnavailable if Redis fails. The entry goes to the near cache too."""
        now = time.time()
        fresh_ms = self._fresh_ms()
        fresh_until = now + fresh_ms / 1000
        raw = encode_value(version, seconds, fresh_until, cached_at=now)
        entry = Entry(raw, html(version), now, fresh_until, round(seconds, 4))
        self._memo = entry
        if self.near is not None:
            self.near.put(self.key, entry, now)
        self.cache.set(raw, fresh_ms + self.stale_ttl * 1000)
        return entry

    # -- the page -------------------------------------------------------------------------

    def near_hit(self) -> tuple[Entry, float] | None:
        """The near cache's entry and the time now, or None (near cache off, or no fresh
        copy in this worker). No Redis call; XFetch may start an early refresh, as on
        any fresh hit. The app's fast path answers HIT-LOCAL from this."""
        near = self.near
        if near is None:
            return None
        entry = near.get(self.key)
        if entry is None:
            return None
        now = time.time()
        self._maybe_refresh_early(entry, now)
        return entry, now

    def fetch(self) -> Result:
        result = Result("", "HIT")
        hit = self.near_hit()
        if hit is not None:
            return self._answer(result, hit[0], hit[1], "HIT-LOCAL")
        near = self.near
        try:
            entry = self._read(result)
        except CacheUnavailable as exc:
            return self._bypass(result, str(exc))
        if entry is not None:
            now = time.time()
            if now < entry.fresh_until:
                if near is not None:
                    near.put(self.key, entry, now)
                self._maybe_refresh_early(entry, now)
                return self._answer(result, entry, now, "HIT")
            if self._servable(entry, now):
                self._start_refresh(entry, "stale")
                return self._answer(result, entry, now, "STALE")
        result.outcome = "MISS"
        return self._fill(result)

    def _bypass(self, result: Result, reason: str) -> Result:
        log.debug("cache bypassed: %s", reason)
        result.outcome = "BYPASS"
        result.version_html = html(self._query(result))
        return result

    # -- background refresh (stale entries, and fresh ones by XFetch) ---------------------

    def _maybe_refresh_early(self, entry: Entry, now: float) -> None:
        draw = 1.0 - random.random()  # noqa: S311 - in (0, 1]: a probability, not a secret
        if xfetch_due(entry, now, self.beta, draw):
            self._start_refresh(entry, "early")

    def _start_refresh(self, seen: Entry, trigger: str) -> bool:
        """Refresh ``seen`` in a thread of this worker, unless this process is refreshing
        it already or another worker or host holds the lock. True if one was started."""
        key = self.key
        if key in self._refreshing or time.monotonic() < self._refresh_not_before:
            return False
        with self._refresh_guard:
            if key in self._refreshing or time.monotonic() < self._refresh_not_before:
                return False
            self._refreshing.add(key)
        token = secrets.token_hex(16)
        try:
            acquired = self.cache.acquire_lock(token, self.lock_ttl_ms)
        except CacheUnavailable as exc:
            log.debug("no refresh: %s", exc)
            acquired = False
        if not acquired:  # another worker or host is refreshing (or Redis failed)
            self._refresh_not_before = time.monotonic() + REFRESH_RETRY_SECONDS
            self._refreshing.discard(key)
            return False
        metrics.REFRESHES_STARTED.labels(trigger).inc()
        try:
            threading.Thread(
                target=self._refresh,
                args=(token, seen, trigger),
                name="cachestack-refresh",
                daemon=True,  # a worker that stops leaves the lock to expire
            ).start()
        except RuntimeError as exc:  # no thread to be had (interpreter shutting down)
            log.warning("could not start a refresh: %s", exc)
            metrics.REFRESHES_FAILED.labels(trigger).inc()
            self._end_refresh(token, failed=True)
            return False
        return True

    def _refresh(self, token: str, seen: Entry, trigger: str) -> None:
        failed = True
        try:
            result = Result("", "MISS")
            with contextlib.suppress(CacheUnavailable):
                current = self._read(result)
                if current is not None and current.raw != seen.raw:
                    # Refreshed since we saw it (another host, between our GET and SET NX).
                    if self.near is not None and time.time() < current.fresh_until:
                        self.near.put(self.key, current, time.time())
                    failed = False
                    return
            try:
                version = self._query(result)
            except PageUnavailable:
                log.warning("refresh failed; the cached page is still served")
                return
            try:
                self._store(version, result.db_seconds)
            except CacheUnavailable as exc:
                log.warning("could not store the refreshed value in redis: %s", exc)
                return
            failed = False
            metrics.REFRESHES_FINISHED.labels(trigger).inc()
        except Exception as exc:  # a thread's error must not go unseen, nor keep the lock
            log.error("refresh failed: %s: %s", exc.__class__.__name__, str(exc)[:200])
        finally:
            if failed:
                metrics.REFRESHES_FAILED.labels(trigger).inc()
            self._end_refresh(token, failed)

    def _end_refresh(self, token: str, failed: bool) -> None:
        with contextlib.suppress(CacheUnavailable):  # else it expires on its own
            self.cache.release_lock(token)
        if failed:
            self._refresh_not_before = time.monotonic() + REFRESH_RETRY_AFTER_FAILURE_SECONDS
        self._refreshing.discard(self.key)

    # -- nothing cached: one fills, the others wait ---------------------------------------

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
            try:
                entry = self._read(result)
            except CacheUnavailable as exc:
                return self._bypass(result, str(exc))
            now = time.time()
            if entry is not None and self._servable(entry, now):
                result.lock_wait_seconds = time.monotonic() - wait_started
                return self._answer(result, entry, now, "MISS")
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
            try:
                entry = self._read(result)
            except CacheUnavailable as exc:
                return self._bypass(result, str(exc))
            now = time.time()
            if entry is not None and now < entry.fresh_until:
                return self._answer(result, entry, now, result.outcome)
            version = self._query(result)
            start = time.perf_counter()
            try:
                self._store(version, result.db_seconds)
            except CacheUnavailable as exc:
                log.warning("could not store the value in redis: %s", exc)
            result.cache_seconds += time.perf_counter() - start
            result.version_html = html(version)
            return result
        finally:
            with contextlib.suppress(CacheUnavailable):  # else it expires on its own
                self.cache.release_lock(token)
