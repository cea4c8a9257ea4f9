"""PostgreSQL access: a small thread-safe connection pool and the slow query."""

from __future__ import annotations

import logging
import math
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.extensions

from .config import PostgresConfig

log = logging.getLogger("cachestack_app")

# The query the page exists for (the function is created by the database migrations).
SLOW_QUERY = "SELECT slow_version()"


# The server cancels a query at statement_timeout; the client gives it this much longer
# to say so before it stops waiting.
QUERY_GRACE_SECONDS = 2.0


def query_timeout(config: PostgresConfig) -> float:
    """The longest the slow query may take, a new connection included, before the app
    gives up on it."""
    return config.connect_timeout + config.statement_timeout + QUERY_GRACE_SECONDS


class DatabaseUnavailable(Exception):
    """PostgreSQL could not answer; the message is safe to log (no secrets)."""


class ClientTimeout(psycopg2.OperationalError):
    """PostgreSQL did not answer in time: a hung server or a path that drops packets."""


# statement_timeout and TCP keepalives only help while the server runs and its host
# answers: a frozen server, or a network that silently drops packets, leaves a query
# waiting for ever (minutes for unacknowledged data), holding a thread and a pooled
# connection. So every wait on a socket has a deadline, kept per thread.
_deadline = threading.local()


@contextmanager
def deadline_in(seconds: float) -> Iterator[None]:
    """Give PostgreSQL calls in this block ``seconds`` to finish (ClientTimeout after).
    An enclosing block's deadline still holds if it comes first."""
    previous = getattr(_deadline, "at", None), getattr(_deadline, "seconds", None)
    at = time.monotonic() + seconds
    if previous[0] is None or at < previous[0]:
        _deadline.at, _deadline.seconds = at, seconds
    try:
        yield
    finally:
        _deadline.at, _deadline.seconds = previous


def _seconds_left() -> float | None:
    at = getattr(_deadline, "at", None)
    return None if at is None else at - time.monotonic()


def wait_with_deadline(conn: Any) -> None:
    """psycopg2's wait callback: wait_select (psycopg2.extras) with the thread's deadline,
    and poll(), which takes any file descriptor number, where select() stops at 1023.

    With a wait callback installed, psycopg2 drives libpq in non-blocking mode and calls it
    whenever it would block, for connecting as for queries.
    """
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        left = _seconds_left()
        if left is not None and left <= 0:
            raise ClientTimeout(f"no answer from PostgreSQL within {_deadline.seconds:g} s")
        if state == psycopg2.extensions.POLL_READ:
            events = select.POLLIN
        elif state == psycopg2.extensions.POLL_WRITE:
            events = select.POLLOUT
        else:  # pragma: no cover - poll() raises on errors itself
            raise psycopg2.OperationalError(f"unexpected poll state {state}")
        poller = select.poll()
        poller.register(conn.fileno(), events)  # the socket can change while connecting
        poller.poll(None if left is None else math.ceil(left * 1000))


class ConnectionPool:
    """A bounded pool: callers wait (up to their deadline) for a free connection.

    Connections are opened lazily, in autocommit mode, and thrown away after any
    connection-level error so a restarted server is picked up without a restart.
    Connecting has ``connect_timeout`` seconds; :meth:`run` has its own timeout overall.
    """

    def __init__(self, config: PostgresConfig, maxconn: int = 8):
        self._kwargs = config.connect_kwargs()
        self._connect_timeout = config.connect_timeout
        self._query_timeout = query_timeout(config)
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(maxconn)
        # Process-wide; the app's connections are the only ones in a worker.
        psycopg2.extensions.set_wait_callback(wait_with_deadline)

    def _resolved_kwargs(self) -> dict[str, Any]:
        """The connection parameters with the host's addresses looked up here.

        In non-blocking mode libpq looks the name up inside psycopg2's poll(), which holds
        the GIL: a slow DNS answer would stall every thread of the worker, those serving
        cached pages too. getaddrinfo lets them run. libpq tries the addresses in turn
        (within one connect_timeout) and still checks the certificate against the name.
        """
        host, port = self._kwargs["host"], self._kwargs["port"]
        if host.startswith("/"):  # a Unix socket folder
            return self._kwargs
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise DatabaseUnavailable(f"cannot resolve {host}: {exc.strerror or exc}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        return {
            **self._kwargs,
            "host": ",".join([host] * len(addresses)),
            "hostaddr": ",".join(addresses),
        }

    def _open(self) -> Any:
        kwargs = self._resolved_kwargs()
        with deadline_in(self._connect_timeout):  # libpq's own one is off in this mode
            conn = psycopg2.connect(**kwargs)
        conn.autocommit = True
        return conn

    @contextmanager
    def connection(self, fresh_only: bool = False) -> Iterator[tuple[Any, bool]]:
        """Yield (connection, fresh), waiting for a free one until the thread's deadline
        (or the query timeout). On error the connection is closed, not returned."""
        left = _seconds_left()
        wait = self._query_timeout if left is None else max(0.0, left)
        if not self._slots.acquire(timeout=wait):
            raise DatabaseUnavailable("no free database connection in the pool")
        conn = None
        try:
            with self._lock:
                while self._idle and not fresh_only:
                    candidate = self._idle.pop()
                    if not candidate.closed:
                        conn = candidate
                        break
            fresh = conn is None
            if conn is None:
                conn = self._open()
            try:
                yield conn, fresh
            except BaseException:
                _close_quietly(conn)
                conn = None
                raise
            if conn.closed or conn.status != psycopg2.extensions.STATUS_READY:
                _close_quietly(conn)
            else:
                with self._lock:
                    self._idle.append(conn)
        finally:
            self._slots.release()

    def run(self, sql: str, timeout: float | None = None) -> Any:
        """Run one query and return the first column of its first row.

        ``timeout`` (default: :func:`query_timeout`) bounds the whole call: the wait for a
        pooled connection, connecting, the answer and the retry. A failure on a reused
        connection (the server restarted since) is retried once on a new connection, and
        the other idle ones, as old and likely as dead, are closed.
        Raises DatabaseUnavailable on any database error.
        """
        with deadline_in(self._query_timeout if timeout is None else timeout):
            for attempt in (1, 2):
                fresh = True
                try:
                    with self.connection(fresh_only=attempt == 2) as (conn, fresh):
                        with conn.cursor() as cur:
                            cur.execute(sql)
                            row = cur.fetchone()
                        return row[0] if row else None
                except ClientTimeout as exc:
                    # The idle connections lead to the same hung server: each would cost
                    # the next callers the whole timeout again. A retry would too.
                    self.close()
                    raise DatabaseUnavailable(_describe(exc)) from None
                except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                    if attempt == 1 and not fresh and _is_connection_lost(exc):
                        self.close()
                        continue
                    raise DatabaseUnavailable(_describe(exc)) from None
                except psycopg2.Error as exc:
                    raise DatabaseUnavailable(_describe(exc)) from None
        raise DatabaseUnavailable("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the idle connections (those in use close when their error is seen)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close_quietly(conn)


def _is_connection_lost(exc: Exception) -> bool:
    # QueryCanceled (statement_timeout) is an OperationalError too, but not a lost link.
    return not isinstance(exc, psycopg2.extensions.QueryCanceledError)


def _describe(exc: Exception) -> str:
    """One line about a database error, without the DSN."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{exc.__class__.__name__}: {first}"[:300]


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # already broken; nothing to do
        log.debug("closing a broken database connection failed")


class Database:
    """The app's view of PostgreSQL: the slow query and a readiness probe."""

    def __init__(self, config: PostgresConfig, maxconn: int = 8):
        self.config = config
        self.pool = ConnectionPool(config, maxconn=maxconn)

    def slow_version(self) -> tuple[str, float]:
        """Run SELECT slow_version(); return (version, seconds taken)."""
        start = time.perf_counter()
        version = self.pool.run(SLOW_QUERY)
        return str(version), time.perf_counter() - start

    def ping(self) -> None:
        """Raise DatabaseUnavailable unless PostgreSQL answers SELECT 1 within
        connect_timeout: a readiness probe must answer before its caller gives up."""
        self.pool.run("SELECT 1", timeout=self.config.connect_timeout)
