"""The servers the tests run are the ones the product ships (Debian 13): Valkey 8 and
PostgreSQL 17 behind the default fixtures, and Redis OSS 8.0, the alternative engine, under
the app's cache-aside flow (gunicorn, a TLS+AUTH one-shard cluster, as on ElastiCache)."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.app.conftest import get, ini, slow_calls


def server_info(node: Any) -> dict[str, Any]:
    """INFO server of one node."""
    client = node.client()
    try:
        return dict(client.info("server"))
    finally:
        client.close()


def test_the_app_caches_in_a_redis_oss_8_cluster(app_db, redis_oss_cluster, gunicorn_factory):
    for node in redis_oss_cluster.nodes:
        info = server_info(node)
        assert str(info["redis_version"]).startswith("8."), info
        assert "valkey_version" not in info, info  # Redis OSS itself, not Valkey
    redis_oss_cluster.client().flushall()
    server = gunicorn_factory(ini(app_db, redis_oss_cluster, cluster=True))

    first = get(server.url + "/")
    assert first.status == 200 and first.headers["X-Cache"] == "MISS"
    assert "PostgreSQL 17" in first.body
    second = get(server.url + "/")
    assert second.status == 200 and second.headers["X-Cache"] == "HIT"
    assert slow_calls(app_db) == 1
    assert redis_oss_cluster.client().exists("cachestack:{slow_version}:v2") == 1

    ready = get(server.url + "/healthz/ready")
    assert ready.status == 200, ready.body
    assert json.loads(ready.body)["redis"] == "ok", ready.body


def test_the_default_fixtures_run_valkey_8_and_postgresql_17(
    postgresql_server, redis_server, redis_tls_server, redis_cluster, redis_private_server
):
    for node in (redis_server, redis_tls_server, *redis_cluster.nodes, redis_private_server):
        info = server_info(node)
        assert str(info.get("valkey_version", "")).startswith("8."), info
    version = postgresql_server.execute("SHOW server_version")[0][0]
    assert version.startswith("17"), version
