"""The cluster client's counting hook: redis-py's RedisCluster reports each MOVED, ASK,
TRYAGAIN and retry to ``_record_error_metric``; cachestack's subclass counts them there.
No server: the hook is called as RedisCluster calls it (the integration test
tests/integration/app/test_cluster_reshard_failover.py shows it under a real reshard)."""

from __future__ import annotations

import inspect
import threading
from types import SimpleNamespace

import redis
from cachestack_app import metrics
from cachestack_app.cache import counting_cluster_class
from redis.cluster import RedisCluster
from redis.exceptions import AskError, MovedError, TryAgainError

CONNECTION = SimpleNamespace(host="127.0.0.1", port=7000)


def value(counter) -> float:
    return counter._value.get()


def bare_client(known: dict | None = None):
    """An instance of the subclass without connecting: only what the hook touches."""
    client = counting_cluster_class().__new__(counting_cluster_class())
    client.nodes_manager = SimpleNamespace(
        _lock=threading.RLock(),
        nodes_cache=dict(known or {}),
        get_node=lambda host, port, node_name=None: (known or {}).get(f"{host}:{port}"),
    )
    return client


def test_redis_py_still_reports_redirects_and_retries_where_the_hook_listens():
    assert issubclass(counting_cluster_class(), RedisCluster)
    params = list(inspect.signature(RedisCluster._record_error_metric).parameters)
    assert params == ["self", "error", "connection", "is_internal", "retry_attempts"]
    execute = inspect.getsource(RedisCluster._execute_command)
    assert execute.count("self._record_error_metric(") >= 3  # MOVED, TRYAGAIN, ASK
    retry_loop = inspect.getsource(RedisCluster._internal_execute_command)
    assert "retry_attempts=failure_count" in retry_loop


def test_moved_ask_tryagain_and_retries_are_counted_apart():
    client = bare_client({"127.0.0.1:7001": object()})
    moved, ask = (metrics.CACHE_REDIRECTS.labels(k) for k in ("moved", "ask"))
    before = (value(moved), value(ask), value(metrics.CACHE_RETRIES))
    client._record_error_metric(MovedError("866 127.0.0.1:7001"), CONNECTION)
    client._record_error_metric(AskError("866 127.0.0.1:7001"), CONNECTION)
    client._record_error_metric(AskError("866 127.0.0.1:7001"), CONNECTION)
    client._record_error_metric(TryAgainError("TRYAGAIN"), CONNECTION)
    error = redis.ConnectionError("refused")
    client._record_error_metric(error, CONNECTION, retry_attempts=1)  # retried
    client._record_error_metric(error, CONNECTION, retry_attempts=1, is_internal=False)  # gave up
    client._record_error_metric(error, CONNECTION, is_internal=False)  # no retry left
    after = (value(moved), value(ask), value(metrics.CACHE_RETRIES))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 2, 2]


def test_an_ask_to_a_node_not_in_the_table_adds_it_as_a_primary():
    client = bare_client()
    client._record_error_metric(AskError("866 127.0.0.1:7009"), CONNECTION)
    node = client.nodes_manager.nodes_cache["127.0.0.1:7009"]
    assert (node.host, node.port, node.server_type) == ("127.0.0.1", 7009, "primary")
