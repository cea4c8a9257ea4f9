"""Prometheus metrics. In multiprocess mode (PROMETHEUS_MULTIPROC_DIR set before the app
starts, as under gunicorn) every worker writes its own files and /metrics adds them up."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess
from prometheus_client import values as _values


def pid_cached_at_fork() -> Callable[[], int]:
    """This process's id, from a cache that os.register_at_fork renews in every child."""
    pid = [os.getpid()]

    def renew() -> None:
        pid[0] = os.getpid()

    os.register_at_fork(after_in_child=renew)
    return lambda: pid[0]


def multiprocess_value_class() -> Any:
    """prometheus_client's multiprocess value, which asks for the process id on every
    write (to notice a fork and open the new process's own files): by default with
    os.getpid(), a system call, four times per page. It takes the id from
    pid_cached_at_fork() instead: the same id, renewed at each fork (gunicorn forks its
    workers after --preload built the app and its metrics)."""
    return _values.MultiProcessValue(process_identifier=pid_cached_at_fork())


# Before any metric below exists (each takes the value class when it is made); nothing in
# this process makes metrics of its own elsewhere, whose files would then be opened twice.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _values.ValueClass = multiprocess_value_class()

REQUESTS = Counter(
    "cachestack_http_requests", "HTTP requests answered.", ["route", "method", "status"]
)
CACHE_HITS = Counter("cachestack_cache_hits", "Pages served from the cache.")
CACHE_MISSES = Counter("cachestack_cache_misses", "Pages whose value was not in the cache.")
CACHE_BYPASSES = Counter(
    "cachestack_cache_bypasses", "Pages served from PostgreSQL without the cache (Redis down)."
)
CACHE_LOCAL_HITS = Counter(
    "cachestack_cache_local_hits",
    "Pages served from the worker's near cache, without a Redis call.",
)
CACHE_STALE = Counter(
    "cachestack_cache_stale",
    "Pages served stale (past their ttl, within stale_ttl) while one request refreshes them.",
)
# What started a background refresh: a stale entry, or XFetch's early refresh of a fresh
# one. A fixed set: the label never takes a value from a request.
REFRESH_TRIGGERS = ("stale", "early")
REFRESHES_STARTED = Counter(
    "cachestack_cache_refreshes_started",
    "Background refreshes started (this worker took the lock and runs the query).",
    ["trigger"],
)
REFRESHES_FINISHED = Counter(
    "cachestack_cache_refreshes_finished",
    "Background refreshes that stored a new value.",
    ["trigger"],
)
REFRESHES_FAILED = Counter(
    "cachestack_cache_refreshes_failed",
    "Background refreshes that failed (the database did not answer); the entry is kept.",
    ["trigger"],
)
for _trigger in REFRESH_TRIGGERS:  # every series shows, at 0, from the start
    for _counter in (REFRESHES_STARTED, REFRESHES_FINISHED, REFRESHES_FAILED):
        _counter.labels(_trigger)
# Cluster mode: what redis-py's RedisCluster did to keep a command going while the cluster
# reshards or fails over. The kind is one of a fixed pair, never a node or a slot.
REDIRECT_KINDS = ("moved", "ask")
CACHE_REDIRECTS = Counter(
    "cachestack_cache_redirects",
    "MOVED and ASK redirects followed by the cluster client (a slot moved or moving).",
    ["kind"],
)
for _kind in REDIRECT_KINDS:
    CACHE_REDIRECTS.labels(_kind)
CACHE_RETRIES = Counter(
    "cachestack_cache_retries",
    "Cache commands retried by the cluster client after a node failed to answer, the cluster"
    " was down or TRYAGAIN (the topology read again in between for the first two).",
)
SLOW_QUERIES = Counter("cachestack_slow_queries", "SELECT slow_version() queries run.")
LOCK_WAITS = Counter(
    "cachestack_cache_lock_waits", "Requests that waited for another to fill the cache."
)
LOCK_TIMEOUTS = Counter(
    "cachestack_cache_lock_timeouts",
    "Requests answered 503 after lock_timeout, another request still computing the page.",
)
DB_ERRORS = Counter(
    "cachestack_db_errors",
    "Database errors (a page answered 503, or a background refresh failed).",
)
LATENCY = Histogram(
    "cachestack_http_request_duration_seconds",
    "Time to answer a request.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# One counter per X-Cache value the page can carry.
OUTCOME_COUNTERS = {
    "HIT": CACHE_HITS,
    "HIT-LOCAL": CACHE_LOCAL_HITS,
    "STALE": CACHE_STALE,
    "MISS": CACHE_MISSES,
    "BYPASS": CACHE_BYPASSES,
}


def render() -> tuple[bytes, str]:
    """The metrics page body and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
