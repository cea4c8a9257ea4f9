"""The WSGI application: a plain-WSGI fast path for ``/`` and Flask for the rest."""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, Response, jsonify, request

from . import metrics
from .cache import Cache, CacheUnavailable, CircuitBreaker
from .config import AppConfig, ConfigError, load_config
from .db import Database, DatabaseUnavailable
from .page import ERROR_PAGE, UNAVAILABLE_PAGE, elapsed_bytes, html, page_parts, render_page
from .service import Entry, PageService, PageUnavailable

log = logging.getLogger("cachestack_app")

# gunicorn's Arbiter.WORKER_BOOT_ERROR: the master halts instead of respawning workers.
WORKER_BOOT_ERROR = 3
# Methods counted by name; any other is counted as "other", so a client cannot add a
# metrics series per made-up method.
COUNTED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The route label of a request no rule matched (404s, redirects of the router): one series
# for every unknown path, never the path itself.
UNMATCHED_ROUTE = "other"
# The page's headers that never change, and those of a near-cache hit (no Redis call, no
# query: Server-Timing's durations are 0), built once instead of per request.
CONTENT_TYPE = ("Content-Type", "text/html; charset=utf-8")
NO_STORE = ("Cache-Control", "no-store")
LOCAL_HIT = "HIT-LOCAL"
LOCAL_HIT_X_CACHE = ("X-Cache", LOCAL_HIT)
LOCAL_HIT_TIMING = ("Server-Timing", "cache;dur=0.00, db;dur=0.00")


def method_label(method: str) -> str:
    """The method as a metrics label: a known method by name, any other as "other"."""
    return method if method in COUNTED_METHODS else "other"


def site_relative(location: str) -> str:
    """A redirect's target as a path on this site, with no scheme or host.

    Werkzeug builds its router's redirects (a doubled slash merged, a missing trailing
    slash added) as absolute URLs from the request's Host header, which the client
    chooses: such a Location would send the next request wherever the client said. The
    path alone keeps the client on the host it reached (nginx's configured site). Leading
    slashes and backslashes collapse into one slash, so the result can never read as a
    protocol-relative URL (``//host/``, or ``/\\host/`` to some browsers).
    """
    parts = urlsplit(location)
    path = "/" + parts.path.lstrip("/\\")
    return urlunsplit(("", "", path, parts.query, parts.fragment))


StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (gunicorn may redirect it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging() -> None:
    """One line per event on stderr (gunicorn's error log, the journal under systemd)."""
    if log.handlers:
        return
    handler = _StderrHandler()
    handler.setFormatter(
        logging.Formatter(
            "[%(asctime)s] [%(process)d] [%(levelname)s] cachestack_app: %(message)s",
            "%Y-%m-%d %H:%M:%S %z",
        )
    )
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


class CachestackApp:
    """Serves ``GET /`` without Flask's per-request machinery; hands the rest to Flask."""

    def __init__(self, config: AppConfig, db: Database, cache: Cache, flask_app: Flask):
        self.config = config
        self.db = db
        self.cache = cache
        self.service = PageService(config, db, cache)
        self.flask_app = flask_app
        self._host_html = html(config.postgresql.host)
        self._latency = metrics.LATENCY.labels("/")
        self._requests: dict[tuple[str, str], Any] = {}
        self._local_hits = metrics.OUTCOME_COUNTERS[LOCAL_HIT]
        # The near-cache entry last served and its page's bytes around the elapsed time.
        self._local_page: tuple[Entry, bytes, bytes] | None = None

    def _count(self, method: str, status: str, seconds: float) -> None:
        child = self._requests.get((method, status))
        if child is None:
            child = metrics.REQUESTS.labels("/", method, status)
            self._requests[(method, status)] = child
        child.inc()
        self._latency.observe(seconds)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/":
            method = environ.get("REQUEST_METHOD", "GET")
            if method in ("GET", "HEAD"):
                return self.index(method, start_response)
            start = time.perf_counter()
            start_response(
                "405 Method Not Allowed",
                [("Allow", "GET, HEAD"), ("Content-Type", "text/plain"), ("Content-Length", "0")],
            )
            self._count(method_label(method), "405", time.perf_counter() - start)
            return [b""]
        return self.flask_app.wsgi_app(environ, start_response)

    def index(self, method: str, start_response: StartResponse) -> Iterable[bytes]:
        start = time.perf_counter()
        try:
            # A near-cache hit takes the short path (_local_hit), anything else fetch().
            hit = self.service.near_hit()
            if hit is not None:
                return self._local_hit(method, hit[0], hit[1], start, start_response)
            result = self.service.fetch()
        except PageUnavailable as exc:
            return self._respond(
                start_response,
                method,
                "503 Service Unavailable",
                UNAVAILABLE_PAGE,
                exc.outcome,
                exc.result.cache_seconds,
                exc.result.db_seconds,
                start,
                extra=[("Retry-After", "5")],
            )
        except Exception as exc:  # never a traceback in the response
            log.error("GET / failed: %s: %s", exc.__class__.__name__, str(exc)[:200])
            return self._respond(
                start_response,
                method,
                "500 Internal Server Error",
                ERROR_PAGE,
                "BYPASS",
                0,
                0,
                start,
            )
        metrics.OUTCOME_COUNTERS[result.outcome].inc()
        elapsed = time.perf_counter() - start
        body = render_page(result.version_html, self._host_html, elapsed, result.outcome)
        extra = []
        if result.age is not None:
            # HTTP's Age (RFC 9111 5.1): whole seconds since the value was computed.
            extra.append(("Age", str(int(result.age))))
        if result.lock_wait_seconds:
            extra.append(("X-Cache-Lock-Wait", f"{result.lock_wait_seconds:.3f}"))
        return self._respond(
            start_response,
            method,
            "200 OK",
            body,
            result.outcome,
            result.cache_seconds,
            result.db_seconds,
            start,
            extra,
            lock_wait=result.lock_wait_seconds,
        )

    def _local_hit(
        self,
        method: str,
        entry: Entry,
        now: float,
        start: float,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        """HIT-LOCAL, the near cache's answer: the same page, headers and metrics as
        index() gives it, on a shorter path (no Result, the page's fixed bytes built once
        per value, fixed headers prebuilt). Its cost is most of what a near hit costs
        beyond gunicorn's own (docs/cache.md, The near cache)."""
        page = self._local_page
        if page is None or page[0] is not entry:
            head, tail = page_parts(entry.version_html, self._host_html, LOCAL_HIT)
            page = (entry, head, tail)
            self._local_page = page  # one assignment: other threads see old or new
        self._local_hits.inc()
        body = page[1] + elapsed_bytes(time.perf_counter() - start) + page[2]
        start_response(
            "200 OK",
            [
                CONTENT_TYPE,
                ("Content-Length", str(len(body))),
                NO_STORE,
                LOCAL_HIT_X_CACHE,
                LOCAL_HIT_TIMING,
                # HTTP's Age (RFC 9111 5.1): whole seconds since the value was computed.
                ("Age", str(int(max(0.0, now - entry.cached_at)))),
            ],
        )
        self._count(method, "200", time.perf_counter() - start)
        return [b""] if method == "HEAD" else [body]

    def _respond(
        self,
        start_response: StartResponse,
        method: str,
        status: str,
        body: bytes,
        outcome: str,
        cache_seconds: float,
        db_seconds: float,
        start: float,
        extra: list[tuple[str, str]] | None = None,
        lock_wait: float = 0.0,
    ) -> Iterable[bytes]:
        timing = f"cache;dur={cache_seconds * 1000:.2f}, db;dur={db_seconds * 1000:.2f}"
        if lock_wait:
            timing += f", lock;dur={lock_wait * 1000:.2f}"
        headers = [
            CONTENT_TYPE,
            ("Content-Length", str(len(body))),
            NO_STORE,
            ("X-Cache", outcome),
            ("Server-Timing", timing),
        ]
        if extra:
            headers.extend(extra)
        start_response(status, headers)
        self._count(method, status[:3], time.perf_counter() - start)
        return [b""] if method == "HEAD" else [body]


READINESS_REASON_CHARS = 160


def readiness_reason(reason: str, hidden: Iterable[str | None]) -> str:
    """One short line for the readiness body: no line breaks, no secret, at most
    READINESS_REASON_CHARS characters."""
    for value in hidden:
        if value:
            reason = reason.replace(value, "***")
    reason = " ".join(reason.split())
    if len(reason) > READINESS_REASON_CHARS:
        reason = reason[: READINESS_REASON_CHARS - 3] + "..."
    return reason or "unknown"


def _build_flask(db: Database, cache: Cache) -> Flask:
    flask_app = Flask("cachestack_app")

    @flask_app.get("/healthz/live")
    def live() -> Response:
        return jsonify(status="ok")

    @flask_app.get("/healthz/ready")
    def ready() -> tuple[Response, int]:
        # 503 only when PostgreSQL does not answer: a load balancer must not pull a host
        # for a cache blip. The body names each dependency's state and, when it is not
        # ok, why (so a deploy check can name the broken part), never with a secret.
        hidden = (db.config.password, cache.config.password)
        body: dict[str, str] = {}
        try:
            db.ping()
            body["postgresql"] = "ok"
        except DatabaseUnavailable as exc:
            log.warning("readiness: database unavailable: %s", exc)
            body["postgresql"] = "unavailable: " + readiness_reason(str(exc), hidden)
        try:
            # Cluster mode: some primaries silent or the cluster not ok is a partial
            # failure: "degraded", the page served from PostgreSQL for the slots hit.
            partial = cache.health()
            body["redis"] = "degraded: " + readiness_reason(partial, hidden) if partial else "ok"
        except CacheUnavailable as exc:
            reason = str(exc)
            if cache.last_error and reason != cache.last_error:  # the breaker's refusal
                reason = f"{reason} after {cache.last_error}"
            body["redis"] = "degraded: " + readiness_reason(reason, hidden)
        if body["postgresql"] != "ok":
            body["status"] = "unavailable"
            return jsonify(body), 503
        body["status"] = "ok" if body["redis"] == "ok" else "degraded"
        return jsonify(body), 200

    @flask_app.get("/metrics")
    def metrics_page() -> Response:
        data, content_type = metrics.render()
        return Response(data, content_type=content_type)

    @flask_app.errorhandler(500)
    def internal_error(_exc: Exception) -> tuple[bytes, int, dict[str, str]]:
        return ERROR_PAGE, 500, {"Content-Type": "text/html; charset=utf-8"}

    @flask_app.after_request
    def count(response: Response) -> Response:
        # Labels from bounded sets only: the matched rule (never the path asked for) and
        # a known method, so made-up paths and methods add no series to /metrics.
        rule = request.url_rule.rule if request.url_rule else UNMATCHED_ROUTE
        method = method_label(request.method)
        metrics.REQUESTS.labels(rule, method, str(response.status_code)).inc()
        return response

    @flask_app.after_request
    def redirect_on_site(response: Response) -> Response:
        location = response.headers.get("Location")
        if location is not None:
            response.headers["Location"] = site_relative(location)
        return response

    return flask_app


def create_app(config_path: str | None = None) -> WSGIApp:
    """Build the app from the INI file ($CACHESTACK_APP_CONFIG or /etc/cachestack/app.ini).

    A configuration error logs one line naming file, section and key, then exits with
    status 3 (gunicorn's worker boot error), so gunicorn stops instead of respawning.
    """
    configure_logging()
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        sys.stderr.flush()
        raise SystemExit(WORKER_BOOT_ERROR) from None
    db = Database(config.postgresql)
    cache = Cache(config.redis, CircuitBreaker(), namespace=config.cache.namespace)
    app = CachestackApp(config, db, cache, _build_flask(db, cache))
    log.info(
        "started: postgresql %s:%s/%s sslmode=%s, redis %s:%s ssl=%s cluster=%s, ttl %ss"
        " stale_ttl %ss beta %s local_ttl %ss, key %s",
        config.postgresql.host,
        config.postgresql.port,
        config.postgresql.dbname,
        config.postgresql.sslmode,
        config.redis.host,
        config.redis.port,
        str(config.redis.ssl).lower(),
        str(config.redis.cluster).lower(),
        config.cache.ttl,
        config.cache.stale_ttl,
        config.cache.beta,
        config.cache.local_ttl,
        cache.key,
    )
    # Everything loaded so far lives as long as the worker: keep it out of the garbage
    # collector's scans, which otherwise pause a request now and then (p99).
    gc.freeze()
    return app
