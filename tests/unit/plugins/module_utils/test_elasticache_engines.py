"""Unit tests for plugins/module_utils/_elasticache_engines.py: one test per rule."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / ".collections"
if str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.cachestack.aws.plugins.module_utils import (  # noqa: E402
    _elasticache_engines as engines,
)


@pytest.mark.parametrize(
    ("engine", "version", "family"),
    [
        ("valkey", "7.2", "valkey7"),
        ("valkey", "8.0", "valkey8"),
        ("valkey", "8.1", "valkey8"),
        ("valkey", "8.2", "valkey8"),
        ("valkey", "8.2.1", "valkey8"),
        ("valkey", "9.0", "valkey9"),
        ("redis", "7.1", "redis7"),
        ("redis", "7.0", "redis7"),
        ("redis", "6.x", "redis6.x"),
        ("redis", "6.2", "redis6.x"),
        ("redis", "5.0.6", "redis5.0"),
        ("redis", "4.0.10", "redis4.0"),
        # Not a version of that engine: no family.
        ("redis", "7.2", None),
        ("redis", "8.2", None),
        ("valkey", "7.1", None),
        ("valkey", "6.2", None),
        ("memcached", "1.6", None),
    ],
)
def test_family(engine: str, version: str, family: str | None) -> None:
    assert engines.family(engine, version) == family


@pytest.mark.parametrize(
    ("engine", "version", "cluster_mode", "group"),
    [
        ("valkey", "8.2", "enabled", "default.valkey8.cluster.on"),
        ("valkey", "8.2", "disabled", "default.valkey8"),
        ("valkey", "8.2", None, "default.valkey8"),
        ("valkey", "9.0", "enabled", "default.valkey9.cluster.on"),
        ("redis", "7.1", "enabled", "default.redis7.cluster.on"),
        ("redis", "6.x", "enabled", "default.redis6.x.cluster.on"),
        ("redis", "8.0", "enabled", None),
    ],
)
def test_default_group(engine: str, version: str, cluster_mode: str | None, group: str) -> None:
    assert engines.default_group(engine, version, cluster_mode) == group


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("default.valkey8.cluster.on", ("valkey8", True)),
        ("default.valkey8", ("valkey8", False)),
        ("default.redis6.x.cluster.on", ("redis6.x", True)),
        ("default.redis7", ("redis7", False)),
        ("cachestack-valkey8", None),
        (None, None),
    ],
)
def test_parse_default_group(name: str | None, parsed: tuple[str, bool] | None) -> None:
    assert engines.parse_default_group(name) == parsed


def problems(current: dict[str, Any] | None = None, **params: Any) -> str:
    return "; ".join(engines.engine_problems(params, current))


def test_a_consistent_request_has_no_problem() -> None:
    assert (
        problems(
            engine="valkey",
            engine_version="8.2",
            cluster_mode="enabled",
            cache_parameter_group_name="default.valkey8.cluster.on",
        )
        == ""
    )
    assert problems(engine="redis", engine_version="7.1", cluster_mode="enabled") == ""
    # A group of the user's own is not checked (only AWS's default names can be).
    assert problems(engine="valkey", engine_version="8.2", cache_parameter_group_name="mine") == ""


@pytest.mark.parametrize(
    ("current", "params", "says"),
    [
        pytest.param(
            None,
            {
                "engine": "valkey",
                "engine_version": "8.2",
                "cluster_mode": "enabled",
                "cache_parameter_group_name": "default.redis7.cluster.on",
            },
            [
                "cache_parameter_group_name=default.redis7.cluster.on is a redis7 group",
                "engine=valkey engine_version=8.2 needs family valkey8",
                "use default.valkey8.cluster.on, or leave cache_parameter_group_name unset",
            ],
            id="valkey-with-a-redis-default-group",
        ),
        pytest.param(
            None,
            {"engine": "valkey", "cache_parameter_group_name": "default.redis7.cluster.on"},
            ["is a redis7 group, which engine=valkey cannot use"],
            id="valkey-without-a-version-and-a-redis-default-group",
        ),
        pytest.param(
            None,
            {"engine": "redis", "engine_version": "8.2", "cluster_mode": "enabled"},
            [
                "engine_version=8.2 is not a version of engine=redis",
                "Redis OSS ends at 7.1",
                "Valkey 8.2 is engine=valkey",
            ],
            id="redis-with-a-valkey-version",
        ),
        pytest.param(
            None,
            {"engine": "valkey", "engine_version": "7.1"},
            ["engine_version=7.1 is not a version of engine=valkey"],
            id="valkey-with-a-redis-only-version",
        ),
        pytest.param(
            None,
            {
                "engine": "valkey",
                "engine_version": "9.0",
                "cluster_mode": "enabled",
                "cache_parameter_group_name": "default.valkey8.cluster.on",
            },
            [
                "is a valkey8 group, but engine=valkey engine_version=9.0 needs family valkey9",
                "use default.valkey9.cluster.on",
            ],
            id="a-default-group-of-another-version-family",
        ),
        pytest.param(
            None,
            {
                "engine": "valkey",
                "engine_version": "8.2",
                "cluster_mode": "enabled",
                "cache_parameter_group_name": "default.valkey8",
            },
            [
                "cluster_mode=enabled needs a parameter group with cluster-enabled yes",
                "use default.valkey8.cluster.on",
            ],
            id="cluster-mode-with-a-default-group-without-cluster-on",
        ),
        pytest.param(
            {"engine": "valkey", "engine_version": "8.2.0", "cluster_mode": "enabled"},
            {"cache_parameter_group_name": "default.valkey8"},
            ["cluster_mode=enabled needs a parameter group with cluster-enabled yes"],
            id="cluster-mode-of-the-running-group-counts",
        ),
        pytest.param(
            {"engine": "valkey", "engine_version": "8.2.0", "cluster_mode": "enabled"},
            {"engine": "redis", "engine_version": "7.1"},
            ["cannot change Valkey back to Redis OSS", "Keep engine=valkey"],
            id="valkey-back-to-redis",
        ),
        pytest.param(
            {"engine": "redis", "engine_version": "7.1.0"},
            {"engine": "valkey"},
            ["needs engine_version in the same request"],
            id="an-engine-change-needs-its-version",
        ),
    ],
)
def test_a_request_aws_would_refuse_is_refused(
    current: dict[str, Any] | None, params: dict[str, Any], says: list[str]
) -> None:
    said = problems(current, **params)
    for part in says:
        assert part in said


def test_a_downgrade_is_refused() -> None:
    current = {"engine": "valkey", "engine_version": "8.2.0"}
    said = problems(current, engine="valkey", engine_version="8.1")
    assert "engine_version=8.1 is older than the 8.2.0 the group runs" in said
    assert "never downgrades" in said
    # The same version, said shorter, and an upgrade are not downgrades.
    assert problems(current, engine="valkey", engine_version="8.2") == ""
    assert problems(current, engine="valkey", engine_version="9.0") == ""


def test_redis_to_valkey_is_not_a_downgrade() -> None:
    current = {"engine": "redis", "engine_version": "7.1.0", "cluster_mode": "enabled"}
    assert problems(current, engine="valkey", engine_version="8.2") == ""
    assert problems(current, engine="valkey", engine_version="7.2") == ""


@pytest.mark.parametrize(
    ("wanted", "running", "downgrade"),
    [
        ("7.1", "7.1.0", False),
        ("7", "7.1.0", False),
        ("7.0", "7.1.0", True),
        ("8.1", "8.2.0", True),
        ("8.2.0", "8.2.1", True),
        ("9.0", "8.2.1", False),
        ("6.x", "7.1.0", False),
        (None, "7.1.0", False),
    ],
)
def test_is_downgrade(wanted: str | None, running: str, downgrade: bool) -> None:
    assert engines.is_downgrade(wanted, running) is downgrade


# Filling in the default group


def test_create_gets_the_default_cluster_group_of_engine_and_version() -> None:
    params = {"engine": "valkey", "engine_version": "8.2", "cluster_mode": "enabled"}
    assert engines.resolve_parameter_group(params, None) == ("default.valkey8.cluster.on", [])
    params = {"engine_version": "7.1", "cluster_mode": "disabled"}  # AWS's default: redis
    assert engines.resolve_parameter_group(params, None) == ("default.redis7", [])


def test_create_without_a_version_leaves_the_group_to_aws() -> None:
    assert engines.resolve_parameter_group({"engine": "valkey"}, None) == (None, [])


def test_a_given_group_is_kept() -> None:
    params = {"engine": "valkey", "engine_version": "8.2", "cache_parameter_group_name": "mine"}
    assert engines.resolve_parameter_group(params, None) == ("mine", [])


def test_an_existing_group_keeps_its_parameter_group_within_its_family() -> None:
    current = {
        "engine": "valkey",
        "engine_version": "8.1.0",
        "cluster_mode": "enabled",
        "cache_parameter_group_name": "mine",
    }
    params = {"engine": "valkey", "engine_version": "8.2", "cluster_mode": "enabled"}
    assert engines.resolve_parameter_group(params, current) == (None, [])


def test_redis_to_valkey_swaps_the_default_group_for_the_new_family() -> None:
    current = {
        "engine": "redis",
        "engine_version": "7.1.0",
        "cluster_mode": "enabled",
        "cache_parameter_group_name": "default.redis7.cluster.on",
    }
    params = {"engine": "valkey", "engine_version": "8.2"}
    assert engines.resolve_parameter_group(params, current) == ("default.valkey8.cluster.on", [])


def test_redis_to_valkey_with_a_group_of_ones_own_asks_for_one() -> None:
    current = {
        "engine": "redis",
        "engine_version": "7.1.0",
        "cluster_mode": "enabled",
        "cache_parameter_group_name": "cachestack-redis7",
    }
    name, errors = engines.resolve_parameter_group(
        {"engine": "valkey", "engine_version": "8.2"}, current
    )
    assert name is None
    (said,) = errors
    assert "uses its own parameter group cachestack-redis7" in said
    assert "set cache_parameter_group_name to one of family valkey8" in said
