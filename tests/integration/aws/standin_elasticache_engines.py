"""ElastiCache engines as AWS runs them, for ``moto_compat.py``.

moto 5.2 keeps only the ``Engine`` of a ModifyReplicationGroup call (it ignores
``EngineVersion`` and ``CacheParameterGroupName``), refuses nothing, and has no member
cache clusters: DescribeCacheClusters answers ``CacheClusterNotFound`` for every member a
DescribeReplicationGroups lists. AWS (its API reference, botocore's ElastiCache model):

* ModifyReplicationGroup changes a group's engine, engine version and parameter group in
  place; Redis OSS to Valkey is such an upgrade, the endpoints stay. Valkey back to Redis
  OSS is not possible: the stand-in refuses it with ``InvalidParameterCombination``
  (ModifyReplicationGroup's error "Two or more incompatible parameters were specified").
* Every member cache cluster of a replication group reports the group's ``Engine``,
  ``EngineVersion`` (the full version, ``7.1.0`` for a group created with ``7.1``),
  ``CacheParameterGroup``, ``CacheNodeType``, ``CacheSubnetGroupName``,
  ``SecurityGroups`` and ``PreferredMaintenanceWindow``.
* ModifyReplicationGroup's ``PreferredMaintenanceWindow`` and ``SecurityGroupIds`` apply to
  the group's member clusters (moto ignores both).
* A group created without a version runs the engine's newest; without a parameter group,
  AWS's default group of its family (``default.<family>.cluster.on`` in cluster mode).

``install()`` (called by ``moto_compat.py`` before ``standin_lifecycle.install()``, so the
lifecycle's call log records the refusals) patches moto to do the same. The engine table
is ``plugins/module_utils/_elasticache_engines.py``'s: the families and default names the
module checks are the ones the stand-in reports.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from moto.core.responses import ActionResult
from moto.elasticache.exceptions import InvalidParameterCombinationException
from moto.elasticache.models import ElastiCacheBackend
from moto.elasticache.responses import ElastiCacheResponse

# The collection's engine table, loaded from this checkout (no collection path needed).
_ENGINES_FILE = (
    Path(__file__).resolve().parents[3] / "plugins" / "module_utils" / "_elasticache_engines.py"
)


def _load_engines() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_cachestack_engines", _ENGINES_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


engines = _load_engines()

# The version AWS picks when none is given (the newest of each engine at the time of writing).
NEWEST = {"redis": "7.1.0", "valkey": "8.2.0"}


def full_version(version: str | None, engine: str) -> str:
    """``7.1`` -> ``7.1.0``: AWS reports the full version a group runs."""
    if not version:
        return NEWEST.get(engine, "7.1.0")
    parts = version.split(".")
    if len(parts) == 2 and all(part.isdigit() for part in parts):
        return f"{version}.0"
    return version


def _cluster_mode(group: Any) -> str:
    mode = getattr(group, "cluster_mode", None)
    if mode:
        return str(mode).lower()
    return "enabled" if getattr(group, "cluster_enabled", False) else "disabled"


def _settle_new_group(group: Any) -> None:
    """What AWS fills in for a new group: the full version and the default group."""
    group.engine = group.engine or "redis"
    group.engine_version = full_version(group.engine_version, group.engine)
    if not group.cache_parameter_group_name:
        group.cache_parameter_group_name = engines.default_group(
            group.engine, group.engine_version, _cluster_mode(group)
        )


class _Member:
    """A member cache cluster as DescribeCacheClusters shows it, read from its group.

    A plain object (moto's models track every instance made): the response serializer
    reads the attributes named after the API's members.
    """

    def __init__(self, backend: ElastiCacheBackend, group: Any, cluster_id: str) -> None:
        region = backend.region_name
        self.cache_cluster_id = cluster_id
        self.arn = f"arn:aws:elasticache:{region}:{backend.account_id}:cluster:{cluster_id}"
        self.replication_group_id = group.replication_group_id
        self.cache_node_type = group.cache_node_type
        self.engine = group.engine
        self.engine_version = group.engine_version
        self.cache_cluster_status = group.status
        self.num_cache_nodes = 1
        self.cache_subnet_group_name = group.cache_subnet_group_name
        self.preferred_maintenance_window = group.preferred_maintenance_window
        self.transit_encryption_enabled = group.transit_encryption_enabled
        self.at_rest_encryption_enabled = group.at_rest_encryption_enabled
        self.auth_token_enabled = group.auth_token_enabled
        self.cache_cluster_create_time = group.replication_group_create_time
        self.cache_parameter_group = {
            "CacheParameterGroupName": group.cache_parameter_group_name,
            "ParameterApplyStatus": "in-sync",
            "CacheNodeIdsToReboot": [],
        }
        self.security_groups = [
            {"SecurityGroupId": group_id, "Status": "active"}
            for group_id in group.security_group_ids or []
        ]


def members(backend: ElastiCacheBackend) -> dict[str, Any]:
    """Every member cache cluster of every replication group, by id."""
    found = {}
    for group in backend.replication_groups.values():
        for cluster_id in group.member_clusters:
            found[cluster_id] = _Member(backend, group, cluster_id)
    return found


_original_describe_clusters = ElastiCacheBackend.describe_cache_clusters
_original_create_group = ElastiCacheBackend.create_replication_group
# Set by install(): the method as moto_compat.py left it (its AuthToken handling).
_original_modify: Any = None


def _describe_cache_clusters(
    self: ElastiCacheBackend, cache_cluster_id: str | None = None
) -> list[Any]:
    member_clusters = members(self)
    if cache_cluster_id and cache_cluster_id in member_clusters:
        return [member_clusters[cache_cluster_id]]
    if cache_cluster_id:
        return list(_original_describe_clusters(self, cache_cluster_id=cache_cluster_id))
    return [*_original_describe_clusters(self), *member_clusters.values()]


def _create_replication_group(self: ElastiCacheBackend, *args: Any, **kwargs: Any) -> Any:
    group = _original_create_group(self, *args, **kwargs)
    _settle_new_group(group)
    return group


def _modify_replication_group(self: ElastiCacheResponse) -> ActionResult:
    group = self.elasticache_backend.replication_groups.get(self._get_param("ReplicationGroupId"))
    engine = self._get_param("Engine")
    version = self._get_param("EngineVersion")
    parameter_group = self._get_param("CacheParameterGroupName")
    if group is not None and engine and engine.lower() == "redis" and group.engine == "valkey":
        raise InvalidParameterCombinationException(
            f"Replication group {group.replication_group_id} runs valkey "
            f"{group.engine_version}: it cannot be modified to engine redis."
        )
    result = _original_modify(self)
    if group is not None:
        if engine:
            group.engine = engine.lower()
        if version:
            group.engine_version = full_version(version, group.engine)
        if parameter_group:
            group.cache_parameter_group_name = parameter_group
        window = self._get_param("PreferredMaintenanceWindow")
        if window:
            group.preferred_maintenance_window = window
        security_group_ids = self._get_param("SecurityGroupIds")
        if security_group_ids:
            group.security_group_ids = list(security_group_ids)
    return result


def install() -> None:
    """Patch moto (once, before the server starts)."""
    global _original_modify
    _original_modify = ElastiCacheResponse.modify_replication_group
    ElastiCacheBackend.describe_cache_clusters = _describe_cache_clusters  # type: ignore[method-assign]
    ElastiCacheBackend.create_replication_group = _create_replication_group  # type: ignore[method-assign]
    ElastiCacheResponse.modify_replication_group = _modify_replication_group  # type: ignore[method-assign]
