"""Redis access for the cache-aside page: client, circuit breaker, value and lock."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, NoReturn

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from . import metrics
from .config import RedisConfig

log = logging.getLogger("cachestack_app")

# The version of the cached value's shape: bump it when the value's format or meaning
# changes, so a deploy never reads an entry written by the code before it (old entries
# then expire on their own). v2: the value carries fresh_until and the recompute time.
SHAPE_VERSION = "v2"
# The namespace when app.ini names none (the role passes the stack's name).
DEFAULT_NAMESPACE = "cachestack"


def cache_key(namespace: str = DEFAULT_NAMESPACE) -> str:
    """The page's key: ``<namespace>:{slow_version}:<shape version>``. The namespace keeps
    two stacks sharing one cache apart; the hash tag keeps the value and its lock in one
    cluster slot (config.py allows no braces in a namespace)."""
    return f"{namespace}:{{slow_version}}:{SHAPE_VERSION}"


def lock_key(namespace: str = DEFAULT_NAMESPACE) -> str:
    return cache_key(namespace) + ":lock"


# The keys of the default namespace (the sandbox's stack is named "cachestack").
CACHE_KEY = cache_key()
LOCK_KEY = lock_key()

# Delete the lock only if we still hold it (it may have expired and been taken since).
_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class CacheUnavailable(Exception):
    """Redis did not answer (or the circuit breaker is open)."""


class CircuitBreaker:
    """Stop calling Redis for ``cooldown`` seconds after a failure.

    After the cooldown one caller at a time probes Redis (half-open); success closes the
    breaker, failure opens it again.
    """

    def __init__(self, cooldown: float = 3.0):
        self.cooldown = cooldown
        self._lock = threading.Lock()
        self._open_until = 0.0  # 0.0 means closed
        self._probing = False

    @property
    def state(self) -> str:
        if self._open_until == 0.0:
            return "closed"
        if time.monotonic() < self._open_until:
            return "open"
        return "half-open"

    def allow(self) -> bool:
        if self._open_until == 0.0:
            return True
        with self._lock:
            if self._open_until == 0.0:
                return True
            if time.monotonic() < self._open_until or self._probing:
                return False
            self._probing = True
            return True

    def success(self) -> None:
        if self._open_until != 0.0 or self._probing:
            with self._lock:
                if self._open_until != 0.0:
                    log.info("redis is back: caching resumes")
                self._open_until = 0.0
                self._probing = False

    def failure(self) -> None:
        with self._lock:
            if self._open_until == 0.0:
                log.warning("redis failed: bypassing the cache for %.1f s", self.cooldown)
            self._open_until = time.monotonic() + self.cooldown
            self._probing = False


def make_client(config: RedisConfig, known_nodes: list[tuple[str, int]] | None = None) -> Any:
    """A redis.Redis or redis.cluster.RedisCluster client with short timeouts.

    One retry on a connection error (a pooled connection that died when Redis restarted),
    none on a timeout: a hung Redis costs one socket_timeout, not redis-py's default of
    ten retries with backoff.
    """
    kwargs: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "socket_timeout": config.socket_timeout,
        "socket_connect_timeout": config.socket_timeout,
        "health_check_interval": 0,
        "client_name": "cachestack_app",
    }
    if config.password:
        kwargs["password"] = config.password
    if config.username:
        kwargs["username"] = config.username
    if config.ssl:
        kwargs.update(ssl=True, ssl_cert_reqs="required", ssl_check_hostname=True)
        if config.ssl_ca_certs:
            kwargs["ssl_ca_certs"] = config.ssl_ca_certs
    if config.cluster:
        from redis.cluster import ClusterNode

        # The cluster client's own retry loop re-reads the topology between attempts.
        kwargs["retry"] = Retry(ExponentialBackoff(cap=0.05, base=0.01), 1)
        if known_nodes:
            # Besides the configured node: the nodes a client before this one knew, so a
            # new client finds the cluster even while the configured node is the one down.
            kwargs["startup_nodes"] = [ClusterNode(h, p) for h, p in known_nodes]
        return counting_cluster_class()(**kwargs)
    kwargs["retry"] = Retry(
        ExponentialBackoff(cap=0.05, base=0.01), 1, supported_errors=(redis.ConnectionError,)
    )
    return redis.Redis(**kwargs)


_COUNTING_CLUSTER: Any = None


def counting_cluster_class() -> Any:
    """redis-py's RedisCluster, counting in metrics what it does to keep a command going.

    RedisCluster follows MOVED and ASK itself and retries a command after a node failed to
    answer or the cluster was down (reading the topology again in between). It reports each
    of those to its observability hook ``_record_error_metric``: this subclass counts them
    there (a redirect by kind, a retry) and otherwise leaves the client as it is. It also
    lets an ASK lead to a node the client's table does not hold yet (a new shard's primary
    importing a slot, which CLUSTER SLOTS lists only once it owns one): redis-py 8.1 would
    fail such a command with an AttributeError; the node is added as a MOVED would add it.
    """
    global _COUNTING_CLUSTER  # built once, on first use (cluster mode only)
    if _COUNTING_CLUSTER is not None:
        return _COUNTING_CLUSTER
    from redis.cluster import PRIMARY, ClusterNode, RedisCluster
    from redis.exceptions import AskError, MovedError, TryAgainError

    redirects = {kind: metrics.CACHE_REDIRECTS.labels(kind) for kind in metrics.REDIRECT_KINDS}

    class CountingRedisCluster(RedisCluster):
        def _record_error_metric(
            self,
            error: Exception,
            connection: Any,
            is_internal: bool = True,
            retry_attempts: int | None = None,
        ) -> None:
            if isinstance(error, MovedError):  # a subclass of AskError: first
                redirects["moved"].inc()
            elif isinstance(error, AskError):
                redirects["ask"].inc()
                if self.get_node(host=error.host, port=error.port) is None:
                    node = ClusterNode(error.host, error.port, PRIMARY)
                    with self.nodes_manager._lock:
                        self.nodes_manager.nodes_cache.setdefault(node.name, node)
            elif isinstance(error, TryAgainError) or (is_internal and retry_attempts):
                # TRYAGAIN is retried where it happened; the others by the retry loop,
                # which reports each attempt with its number, and the last error again
                # (not internal) when it gives up.
                metrics.CACHE_RETRIES.inc()
            super()._record_error_metric(
                error, connection, is_internal=is_internal, retry_attempts=retry_attempts
            )

    _COUNTING_CLUSTER = CountingRedisCluster
    return _COUNTING_CLUSTER


class Cache:
    """The cached slow_version() value and the lock that guards its recomputation."""

    def __init__(
        self,
        config: RedisConfig,
        breaker: CircuitBreaker | None = None,
        namespace: str = DEFAULT_NAMESPACE,
    ):
        self.config = config
        self.key = cache_key(namespace)
        self.lock_key = lock_key(namespace)
        self.breaker = breaker or CircuitBreaker()
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._thread = threading.local()
        # Why Redis last failed: readiness says it while the breaker keeps Redis skipped.
        self.last_error = ""
        # Cluster mode: the nodes the last client knew, to seed the next one with.
        self._known_nodes: list[tuple[str, int]] = []

    def _get_client(self) -> Any:
        if self.config.cluster:
            return self._shared_client()
        # Standalone: each thread keeps one connection of the shared pool. A pooled
        # checkout first tries a non-blocking read to see that the connection is clean
        # (three more syscalls per command): 190 against 140 us of CPU per GET here.
        client = getattr(self._thread, "client", None)
        if client is None:
            pool = self._shared_client().connection_pool
            # This connects, so it can fail too.
            client = redis.Redis(connection_pool=pool, single_connection_client=True)
            self._thread.client = client
        return client

    def _shared_client(self) -> Any:
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    # RedisCluster reads the topology here, so this can fail too.
                    self._client = make_client(self.config, self._known_nodes)
                client = self._client
        return client

    def _call(self, method: str, *args: Any, past_breaker: bool = False, **kwargs: Any) -> Any:
        if not past_breaker and not self.breaker.allow():
            raise CacheUnavailable("circuit breaker open")
        try:
            result = getattr(self._get_client(), method)(*args, **kwargs)
        # RedisClusterException (no reachable node) is not a RedisError.
        except (redis.RedisError, redis.exceptions.RedisClusterException, OSError) as exc:
            self.breaker.failure()
            if self.config.cluster:
                self._drop_cluster_client()
            else:
                self._drop_thread_client()
            self.last_error = f"{exc.__class__.__name__}: {exc}"[:200]
            raise CacheUnavailable(self.last_error) from None
        self.breaker.success()
        return result

    def _drop_thread_client(self) -> None:
        # redis-py keeps a connection after an error reply: after a failover it would stay
        # on the old primary, now read-only (READONLY on every write), for good. The next
        # command connects again, through the endpoint, to whichever node it leads to now.
        client = getattr(self._thread, "client", None)
        self._thread.client = None
        if client is not None:
            try:
                if client.connection is not None:
                    client.connection.disconnect()
                client.close()  # gives the (now closed) connection back to the pool
            except Exception:  # already broken
                log.debug("closing a broken redis connection failed")

    def _drop_cluster_client(self) -> None:
        # A RedisCluster that lost every node keeps an empty topology: start afresh.
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                nodes = client.get_nodes()
                known = [(n.host, int(n.port)) for n in nodes]
                if known:
                    self._known_nodes = known[:16]
                # The idle connections only, not client.close(): other threads share this
                # client and may be reading a reply on it now (a page, readiness, a
                # refresh); closing their connection under them failed that read inside
                # redis-py with AttributeError, not a ConnectionError (a 500 during a
                # failover, CI). Those close once their command is done and the client
                # has no reference left.
                for node in nodes:
                    if node.redis_connection is not None:
                        node.redis_connection.connection_pool.disconnect(inuse_connections=False)
            except Exception:  # already broken
                log.debug("closing a broken redis cluster client failed")

    def get(self) -> bytes | None:
        return self._call("get", self.key)

    def set(self, value: bytes, ttl_ms: int) -> None:
        self._call("set", self.key, value, px=ttl_ms)

    def acquire_lock(self, token: str, ttl_ms: int) -> bool:
        return bool(self._call("set", self.lock_key, token, nx=True, px=ttl_ms))

    def lock_held(self) -> bool:
        return bool(self._call("exists", self.lock_key))

    def release_lock(self, token: str) -> None:
        # Tried even when the breaker just opened: a lock left behind makes every other
        # worker and host wait up to lock_timeout. It costs one socket_timeout at most.
        self._call("eval", _RELEASE_LOCK, 1, self.lock_key, token, past_breaker=True)

    def ping(self) -> bool:
        return bool(self._call("ping"))

    def health(self) -> str:
        """How the cache is, for readiness: "" when whole, else why it is partly
        unavailable; CacheUnavailable when it does not answer at all (or the breaker is
        open). Standalone: a PING.

        Cluster mode: every primary of the client's table is PINGed and one that answers
        is asked CLUSTER INFO. Some primaries silent, or the cluster's own state not ok
        (cluster_state, slots in pfail or fail), is a partial failure: it is reported, and
        neither opens nor closes the breaker nor drops the client, since the page's slot
        may well be served (the page's own commands open the breaker if it is not, and
        probe it when half-open). A PING that fails makes redis-py read the topology
        again, so a promoted replica shows at the next check. Only when no primary answers
        is it a failure, as a failed PING is standalone; only a whole cluster closes it.
        """
        if not self.config.cluster:
            self.ping()
            return ""
        # Not through allow(): readiness takes no half-open probe (a partial answer would
        # neither close nor reopen it); the page's next command probes.
        if self.breaker.state == "open":
            raise CacheUnavailable("circuit breaker open")
        try:
            client = self._shared_client()
            primaries = client.get_primaries()
        except (redis.RedisError, redis.exceptions.RedisClusterException, OSError) as exc:
            return self._failed(exc)
        silent, info, error = _ask_primaries(client, primaries)
        if silent:
            # The table may be out of date: a node that left the cluster (fewer shards) is
            # no primary that does not answer. Read the topology again and ask once more.
            try:
                client.nodes_manager.initialize()
                primaries = client.get_primaries()
            except (redis.RedisError, redis.exceptions.RedisClusterException, OSError):
                log.debug("reading the cluster's topology again failed")
            else:
                silent, info, error = _ask_primaries(client, primaries)
        if info is None:  # no primary answered
            return self._failed(error or CacheUnavailable("no primary in the cluster's table"))
        problems = []
        if silent:
            problems.append(f"{len(silent)} of {len(primaries)} primaries do not answer")
        state = cluster_info_problems(info)
        if state:
            problems.append(state)
        if not problems:  # the whole cluster answers: as a PING that succeeds standalone
            self.breaker.success()
        return "; ".join(problems)

    def _failed(self, exc: BaseException) -> NoReturn:
        self.breaker.failure()
        self._drop_cluster_client()
        self.last_error = f"{exc.__class__.__name__}: {exc}"[:200]
        raise CacheUnavailable(self.last_error) from None


def _ask_primaries(client: Any, primaries: list[Any]) -> tuple[list[str], Any, Exception | None]:
    """PING every primary and ask the first that answers CLUSTER INFO: (the names of those
    that did not answer, the info or None, the last error)."""
    silent: list[str] = []
    info: Any = None
    error: Exception | None = None
    for node in primaries:
        try:
            client.execute_command("PING", target_nodes=node)
            if info is None:
                info = client.execute_command("CLUSTER INFO", target_nodes=node)
        except (redis.RedisError, redis.exceptions.RedisClusterException, OSError) as exc:
            silent.append(node.name)
            error = exc
    return silent, info, error


def cluster_info_problems(info: Any) -> str:
    """What CLUSTER INFO says is wrong: "" when cluster_state is ok and no slot is in
    pfail or fail."""
    if isinstance(info, bytes):
        info = info.decode(errors="replace")
    if isinstance(info, str):
        info = dict(line.split(":", 1) for line in info.split() if ":" in line)
    if not isinstance(info, dict):
        return "no cluster info"
    values = {str(k): str(v).strip() for k, v in info.items()}
    problems = []
    if values.get("cluster_state") != "ok":
        problems.append(f"cluster_state {values.get('cluster_state', 'unknown')}")
    for field in ("cluster_slots_pfail", "cluster_slots_fail"):
        count = values.get(field, "0")
        if count != "0":
            problems.append(f"{field} {count}")
    return ", ".join(problems)
