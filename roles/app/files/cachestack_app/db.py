"""PostgreSQL access: a small thread-safe connection pool and the slow query."""

from __future__ import annotations

import logging
import select
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
    """Give PostgreSQL calls in this block ``seconds`` to finish (ClientTimeout after)."""
    previous = getattr(_deadline, "at", None), getattr(_deadline, "seconds", None)
    _deadline.at, _deadline.seconds = time.monotonic() + seconds, seconds
    try:
        yield
    finally:
        _deadline.at, _deadline.seconds = previous


def wait_with_deadline(conn: Any) -> None:
    """psycopg2's wait callback: wait_select (psycopg2.extras) with the thread's deadline.

    With a wait callback installed, psycopg2 drives libpq in non-blocking mode and calls it
    whenever it would block, for connecting as for queries.
    """
    at = getattr(_deadline, "at", None)
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        remaining = None if at is None else at - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise ClientTimeout(f"no answer from PostgreSQL within {_deadline.seconds:g} s")
        if state == psycopg2.extensions.POLL_READ:
            select.select([conn.fileno()], [], [], remaining)
        elif state == psycopg2.extensions.POLL_WRITE:
            select.select([], [conn.fileno()], [], remaining)
        else:  # pragma: no cover - poll() raises on errors itself
            raise psycopg2.OperationalError(f"unexpected poll state {state}")


class ConnectionPool:
    """A bounded pool: callers wait (up to their timeout) for a free connection.

    Connections are opened lazily, in autocommit mode, and thrown away after any
    connection-level error so a restarted server is picked up without a restart.
    Connecting has ``connect_timeout`` seconds; a query the timeout given to :meth:`run`.
    """

    def __init__(self, config: PostgresConfig, maxconn: int = 8):
        self._kwargs = config.connect_kwargs()
        self._connect_timeout = config.connect_timeout
        self._query_timeout = config.statement_timeout + QUERY_GRACE_SECONDS
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(maxconn)
        # Process-wide; the app's connections are the only ones in a worker.
        psycopg2.extensions.set_wait_callback(wait_with_deadline)

    def _open(self) -> Any:
        with deadline_in(self._connect_timeout):  # libpq's own one is off in this mode
            conn = psycopg2.connect(**self._kwargs)
        conn.autocommit = True
        return conn

    @contextmanager
    def connection(
        self, fresh_only: bool = False, wait: float | None = None
    ) -> Iterator[tuple[Any, bool]]:
        """Yield (connection, fresh), waiting up to ``wait`` seconds (default: the query
        timeout) for a free one. On error the connection is closed, not returned."""
        if not self._slots.acquire(timeout=self._query_timeout if wait is None else wait):
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

        ``timeout`` (default: statement_timeout plus a little) bounds the wait for a
        pooled connection and, separately, for the answer. A failure on a reused
        connection (the server restarted since) is retried once on a new connection, and
        the other idle ones, as old and likely as dead, are closed.
        Raises DatabaseUnavailable on any database error.
        """
        timeout = self._query_timeout if timeout is None else timeout
        for attempt in (1, 2):
            fresh = True
            try:
                with self.connection(fresh_only=attempt == 2, wait=timeout) as (conn, fresh):
                    with deadline_in(timeout), conn.cursor() as cur:
                        cur.execute(sql)
                        row = cur.fetchone()
                    return row[0] if row else None
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
    # QueryCanceled (statement_timeout) is an OperationalError too, but not a lost link;
    # after a client-side timeout a retry would only wait as long again.
    return not isinstance(exc, (psycopg2.extensions.QueryCanceledError, ClientTimeout))


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
