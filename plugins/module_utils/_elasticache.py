# Copyright: cachestack.aws contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning logic for the elasticache_replication_group module.

Nothing here talks to AWS: these functions turn a DescribeReplicationGroups answer (and,
when available, a DescribeCacheClusters answer for one member) into a flat state, compare
it with what the user asked for, and build the API requests that close the gap. That keeps
the comparison rules (engine versions, resize planning, auth token handling) unit-testable
without a network.

Private to this collection: the leading underscore means no compatibility promise.
"""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.cachestack.aws.plugins.module_utils import (
    _elasticache_engines as engines,
)

# Options compared against the running group and sent through ModifyReplicationGroup.
# (option name, API parameter of ModifyReplicationGroup)
MODIFIABLE = (
    ("description", "ReplicationGroupDescription"),
    ("engine", "Engine"),
    ("engine_version", "EngineVersion"),
    ("cache_node_type", "CacheNodeType"),
    ("cluster_mode", "ClusterMode"),
    ("automatic_failover_enabled", "AutomaticFailoverEnabled"),
    ("multi_az_enabled", "MultiAZEnabled"),
    ("transit_encryption_enabled", "TransitEncryptionEnabled"),
    ("transit_encryption_mode", "TransitEncryptionMode"),
    ("cache_parameter_group_name", "CacheParameterGroupName"),
    ("security_group_ids", "SecurityGroupIds"),
    ("snapshot_retention_limit", "SnapshotRetentionLimit"),
    ("snapshot_window", "SnapshotWindow"),
    ("preferred_maintenance_window", "PreferredMaintenanceWindow"),
    ("auto_minor_version_upgrade", "AutoMinorVersionUpgrade"),
)

# Options AWS fixes when the group is created: a difference is an error, not a change.
CREATE_ONLY = (
    "at_rest_encryption_enabled",
    "kms_key_id",
    "port",
    "cache_subnet_group_name",
)

# Everything the plan compares, in the order it is shown in the diff.
COMPARED = (
    *(name for name, _param in MODIFIABLE),
    "num_node_groups",
    "replicas_per_node_group",
    "auth_token_enabled",
    *CREATE_ONLY,
)

# Create request: option name -> CreateReplicationGroup parameter.
CREATE_PARAMS = (
    ("description", "ReplicationGroupDescription"),
    ("engine", "Engine"),
    ("engine_version", "EngineVersion"),
    ("cache_node_type", "CacheNodeType"),
    ("automatic_failover_enabled", "AutomaticFailoverEnabled"),
    ("multi_az_enabled", "MultiAZEnabled"),
    ("transit_encryption_enabled", "TransitEncryptionEnabled"),
    ("transit_encryption_mode", "TransitEncryptionMode"),
    ("at_rest_encryption_enabled", "AtRestEncryptionEnabled"),
    ("kms_key_id", "KmsKeyId"),
    ("port", "Port"),
    ("cache_parameter_group_name", "CacheParameterGroupName"),
    ("cache_subnet_group_name", "CacheSubnetGroupName"),
    ("security_group_ids", "SecurityGroupIds"),
    ("snapshot_retention_limit", "SnapshotRetentionLimit"),
    ("snapshot_window", "SnapshotWindow"),
    ("preferred_maintenance_window", "PreferredMaintenanceWindow"),
    ("auto_minor_version_upgrade", "AutoMinorVersionUpgrade"),
    ("auth_token", "AuthToken"),
)

_VERSION_PART = re.compile(r"^\d+$")


def engine_version_matches(wanted: str | None, running: str | None) -> bool:
    """Tell whether the running engine version satisfies the one asked for.

    ElastiCache takes a major.minor version ("7.1") and reports the full one it runs
    ("7.1.0"), so the asked version matches when its parts are a prefix of the running
    parts. Missing running parts count as zero ("7.1.0" asked, "7.1" running matches),
    and an "x" part matches anything from there on ("6.x").
    """
    if wanted is None or running is None:
        return True
    wanted_parts = wanted.strip().lower().split(".")
    running_parts = running.strip().lower().split(".")
    for index, part in enumerate(wanted_parts):
        if part == "x":
            return True
        have = running_parts[index] if index < len(running_parts) else "0"
        if _VERSION_PART.match(part) and _VERSION_PART.match(have):
            if int(part) != int(have):
                return False
        elif part != have:
            return False
    return True


def _enabled(value: Any) -> bool | None:
    """Map the API's 'enabled'/'enabling'/'disabled'/'disabling' strings to a bool."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("enabled", "enabling")


def node_group_replicas(group: dict[str, Any]) -> dict[str, int]:
    """Return {node group id: number of replicas} for a described replication group."""
    replicas = {}
    for node_group in group.get("NodeGroups") or []:
        members = node_group.get("NodeGroupMembers") or []
        replicas[node_group.get("NodeGroupId", "")] = max(len(members) - 1, 0)
    return replicas


def current_state(group: dict[str, Any], member: dict[str, Any] | None = None) -> dict[str, Any]:
    """Flatten a described replication group (and one member cache cluster) to option names.

    A value of None means the API did not report it: the plan does not compare it. Pending
    modifications (apply_immediately=false, or a change in progress) count as the value,
    so a rerun does not ask for the same change again.
    """
    pending = group.get("PendingModifiedValues") or {}
    member = member or {}
    member_pending = member.get("PendingModifiedValues") or {}

    cluster_mode = group.get("ClusterMode")
    if cluster_mode is None and group.get("ClusterEnabled") is not None:
        cluster_mode = "enabled" if group.get("ClusterEnabled") else "disabled"
    cluster_mode = pending.get("ClusterMode", cluster_mode)

    port = None
    if group.get("ConfigurationEndpoint"):
        port = group["ConfigurationEndpoint"].get("Port")
    else:
        for node_group in group.get("NodeGroups") or []:
            if node_group.get("PrimaryEndpoint"):
                port = node_group["PrimaryEndpoint"].get("Port")
                break
    if port is None and member.get("CacheNodes"):
        port = (member["CacheNodes"][0].get("Endpoint") or {}).get("Port")

    replicas = node_group_replicas(group)
    replica_counts = set(replicas.values())

    automatic_failover = group.get("AutomaticFailover")
    if pending.get("AutomaticFailoverStatus"):
        automatic_failover = pending["AutomaticFailoverStatus"]

    auth_token_enabled = group.get("AuthTokenEnabled")
    if pending.get("AuthTokenStatus") in ("SETTING", "ROTATING"):
        auth_token_enabled = True

    security_groups = member.get("SecurityGroups")
    security_group_ids = None
    if security_groups is not None:
        security_group_ids = sorted(sg["SecurityGroupId"] for sg in security_groups)

    return {
        "description": group.get("Description"),
        "engine": member.get("Engine") or group.get("Engine"),
        "engine_version": member_pending.get("EngineVersion") or member.get("EngineVersion"),
        "cache_node_type": member_pending.get("CacheNodeType") or group.get("CacheNodeType"),
        "cluster_mode": cluster_mode,
        "num_node_groups": len(replicas) if replicas else None,
        # Several node groups with different replica counts: no single number describes them.
        "replicas_per_node_group": replica_counts.pop() if len(replica_counts) == 1 else None,
        "automatic_failover_enabled": _enabled(automatic_failover),
        "multi_az_enabled": _enabled(group.get("MultiAZ")),
        "transit_encryption_enabled": pending.get(
            "TransitEncryptionEnabled", group.get("TransitEncryptionEnabled")
        ),
        "transit_encryption_mode": pending.get(
            "TransitEncryptionMode", group.get("TransitEncryptionMode")
        ),
        "auth_token_enabled": auth_token_enabled,
        "at_rest_encryption_enabled": group.get("AtRestEncryptionEnabled"),
        "kms_key_id": group.get("KmsKeyId"),
        "port": port,
        "cache_parameter_group_name": (member.get("CacheParameterGroup") or {}).get(
            "CacheParameterGroupName"
        ),
        "cache_subnet_group_name": member.get("CacheSubnetGroupName"),
        "security_group_ids": security_group_ids,
        "snapshot_retention_limit": group.get("SnapshotRetentionLimit"),
        "snapshot_window": group.get("SnapshotWindow"),
        "preferred_maintenance_window": member.get("PreferredMaintenanceWindow"),
        "auto_minor_version_upgrade": group.get("AutoMinorVersionUpgrade"),
    }


def _kms_matches(wanted: str, current: str) -> bool:
    if wanted == current:
        return True
    # A key id matches the key's ARN; an alias cannot be resolved here, so it is not compared.
    if current.endswith("/" + wanted) or wanted.endswith("/" + current):
        return True
    return wanted.startswith("alias/") or ":alias/" in wanted


def value_matches(name: str, wanted: Any, current: Any) -> bool:
    """Compare one option with the running value; None on either side is 'not compared'."""
    if wanted is None or current is None:
        return True
    if name == "engine_version":
        return engine_version_matches(wanted, current)
    if name == "security_group_ids":
        return sorted(wanted) == sorted(current)
    if name in ("preferred_maintenance_window", "snapshot_window", "engine", "cluster_mode"):
        return str(wanted).lower() == str(current).lower()
    if name == "kms_key_id":
        return _kms_matches(str(wanted), str(current))
    return bool(wanted == current)


_TOKEN_ALLOWED = re.compile(r"^[A-Za-z0-9!&#$^<>-]+$")


def auth_token_problems(token: str) -> list[str]:
    """What AWS would refuse in an AUTH token (the messages never contain the token)."""
    problems = []
    if not 16 <= len(token) <= 128:
        problems.append("auth_token must be 16 to 128 characters long")
    if not _TOKEN_ALLOWED.match(token):
        problems.append(
            "auth_token may only hold letters, digits and the characters ! & # $ ^ < > -"
        )
    return problems


def validate(params: dict[str, Any], current: dict[str, Any] | None) -> list[str]:
    """Return the reasons the request cannot be carried out (empty when it can)."""
    errors = engines.engine_problems(params, current)
    token = params.get("auth_token")
    if token:
        errors.extend(auth_token_problems(token))
    replicas = params.get("replicas_per_node_group")
    if replicas is not None and not 0 <= replicas <= 5:
        errors.append("replicas_per_node_group must be between 0 and 5")
    shards = params.get("num_node_groups")
    if shards is not None and not 1 <= shards <= 500:
        errors.append("num_node_groups must be between 1 and 500")
    if params.get("automatic_failover_enabled") and replicas == 0:
        errors.append("automatic_failover_enabled needs at least one replica")
    if params.get("multi_az_enabled") and params.get("automatic_failover_enabled") is False:
        errors.append("multi_az_enabled needs automatic_failover_enabled=true")
    cluster_mode = params.get("cluster_mode") or (current or {}).get("cluster_mode")
    if (
        params.get("num_node_groups") is not None
        and params["num_node_groups"] > 1
        and cluster_mode != "enabled"
    ):
        errors.append("num_node_groups greater than 1 needs cluster_mode=enabled")
    if params.get("auth_token_update_strategy") and not params.get("auth_token"):
        errors.append("auth_token_update_strategy needs auth_token")
    if current is None:
        if params.get("auth_token") and not params.get("transit_encryption_enabled"):
            errors.append("auth_token needs transit_encryption_enabled=true")
        if params.get("kms_key_id") and not params.get("at_rest_encryption_enabled"):
            errors.append("kms_key_id needs at_rest_encryption_enabled=true")
        return errors
    for name in CREATE_ONLY:
        if not value_matches(name, params.get(name), current.get(name)):
            errors.append(
                f"{name} is {current.get(name)!r} and AWS cannot change it on an existing "
                f"replication group (asked for {params.get(name)!r}): replace the group"
            )
    return errors


def build_create_request(params: dict[str, Any], tags: dict[str, str] | None) -> dict[str, Any]:
    """Build the CreateReplicationGroup request from the module's options."""
    request: dict[str, Any] = {"ReplicationGroupId": params["replication_group_id"]}
    for name, api_name in CREATE_PARAMS:
        if params.get(name) is not None:
            request[api_name] = params[name]
    request.setdefault("ReplicationGroupDescription", params["replication_group_id"])
    if params.get("cluster_mode") is not None:
        request["ClusterMode"] = params["cluster_mode"]
    if params.get("num_node_groups") is not None:
        request["NumNodeGroups"] = params["num_node_groups"]
    if params.get("replicas_per_node_group") is not None:
        request["ReplicasPerNodeGroup"] = params["replicas_per_node_group"]
        if params.get("cluster_mode") != "enabled" and params.get("num_node_groups") is None:
            request["NumNodeGroups"] = 1
    if tags:
        request["Tags"] = [{"Key": key, "Value": str(value)} for key, value in tags.items()]
    return request


def plan_shards(
    params: dict[str, Any], group: dict[str, Any], apply_immediately: bool = True
) -> dict[str, Any] | None:
    """Return the ModifyReplicationGroupShardConfiguration request, or None when not needed.

    Shards are removed from the end: the node groups with the highest ids go, the first
    ones are retained. The API only accepts ApplyImmediately=true.
    """
    wanted = params.get("num_node_groups")
    node_group_ids = sorted(node_group_replicas(group))
    if wanted is None or not node_group_ids or wanted == len(node_group_ids):
        return None
    request: dict[str, Any] = {
        "ReplicationGroupId": group["ReplicationGroupId"],
        "NodeGroupCount": wanted,
        "ApplyImmediately": True,
    }
    if wanted < len(node_group_ids):
        request["NodeGroupsToRetain"] = node_group_ids[:wanted]
    return request


def replicas_after_shards(group: dict[str, Any], shards: dict[str, Any] | None) -> dict[str, int]:
    """Return {node group id: replicas} once a shard request is carried out.

    The node groups the request removes are gone. AWS gives each shard it adds "the same
    number of nodes as the smallest of the existing shards" (online resharding, the
    ElastiCache user guide) and an id of its choosing: those are keyed ``+1``, ``+2``...
    here, since their ids are known only once AWS has made them.
    """
    replicas = node_group_replicas(group)
    if not shards or not replicas:
        return replicas
    if shards.get("NodeGroupsToRetain") is not None:
        keep = set(shards["NodeGroupsToRetain"])
        return {ngid: count for ngid, count in replicas.items() if ngid in keep}
    if shards.get("NodeGroupsToRemove") is not None:
        drop = set(shards["NodeGroupsToRemove"])
        return {ngid: count for ngid, count in replicas.items() if ngid not in drop}
    smallest = min(replicas.values())
    for index in range(shards["NodeGroupCount"] - len(replicas)):
        replicas[f"+{index + 1}"] = smallest
    return replicas


def plan_replicas(
    params: dict[str, Any], group: dict[str, Any], shards: dict[str, Any] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """Return the IncreaseReplicaCount / DecreaseReplicaCount calls that reach the wanted count.

    Each item is (operation name, request). ``shards`` is the shard request that goes first,
    if any: the calls are planned for the node groups it leaves (AWS refuses a
    ReplicaConfiguration naming a node group that is gone). When every node group is off
    in the same direction one NewReplicaCount does it; otherwise only the node groups that
    differ are named in ReplicaConfiguration, leaving out the shards AWS has yet to add
    (their ids are not known yet: the module plans again once they exist). The APIs only
    accept ApplyImmediately=true.
    """
    wanted = params.get("replicas_per_node_group")
    replicas = replicas_after_shards(group, shards)
    if wanted is None or not replicas:
        return []
    calls = []
    for operation, differs in (
        ("IncreaseReplicaCount", lambda count: count < wanted),
        ("DecreaseReplicaCount", lambda count: count > wanted),
    ):
        groups = sorted(ngid for ngid, count in replicas.items() if differs(count))
        request: dict[str, Any] = {
            "ReplicationGroupId": group["ReplicationGroupId"],
            "ApplyImmediately": True,
        }
        if groups and len(groups) == len(replicas):
            request["NewReplicaCount"] = wanted
        else:
            groups = [ngid for ngid in groups if not ngid.startswith("+")]
            if not groups:
                continue
            request["ReplicaConfiguration"] = [
                {"NodeGroupId": ngid, "NewReplicaCount": wanted} for ngid in groups
            ]
        calls.append((operation, request))
    return calls


def plan_modify(
    params: dict[str, Any], current: dict[str, Any], group_id: str
) -> tuple[dict[str, Any] | None, list[str]]:
    """Return (ModifyReplicationGroup request or None, names of the options that change).

    The auth token cannot be read back: with auth_token_update_strategy it is always sent
    (an explicit SET or ROTATE); without it, it is sent (as ROTATE, the way AWS adds AUTH to a
    group that has none) only when the group has no AUTH yet.
    """
    request: dict[str, Any] = {"ReplicationGroupId": group_id}
    changed = []
    for name, api_name in MODIFIABLE:
        wanted = params.get(name)
        if not value_matches(name, wanted, current.get(name)):
            request[api_name] = wanted
            changed.append(name)

    # Turning TLS on or off also needs the mode the user gave, even if the mode is unchanged.
    if (
        "TransitEncryptionEnabled" in request
        and params.get("transit_encryption_mode") is not None
        and "TransitEncryptionMode" not in request
    ):
        request["TransitEncryptionMode"] = params["transit_encryption_mode"]
    # A new engine needs its version in the same request.
    if "Engine" in request and params.get("engine_version") and "EngineVersion" not in request:
        request["EngineVersion"] = params["engine_version"]

    token = params.get("auth_token")
    if token:
        strategy = params.get("auth_token_update_strategy")
        if strategy:
            request["AuthToken"] = token
            request["AuthTokenUpdateStrategy"] = strategy
            changed.append("auth_token")
        elif current.get("auth_token_enabled") is False:
            request["AuthToken"] = token
            request["AuthTokenUpdateStrategy"] = "ROTATE"
            changed.append("auth_token_enabled")

    if not changed:
        return None, []
    request["ApplyImmediately"] = bool(params.get("apply_immediately"))
    return request, changed


def desired_state(params: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The state after the plan: the current one with every asked-for difference applied."""
    after = dict(current)
    for name in COMPARED:
        if name == "auth_token_enabled":
            if params.get("auth_token"):
                after[name] = True
            continue
        wanted = params.get(name)
        if wanted is not None and not value_matches(name, wanted, current.get(name)):
            after[name] = sorted(wanted) if name == "security_group_ids" else wanted
    return after


def diff_view(state: dict[str, Any] | None) -> dict[str, Any]:
    """The compared attributes of a state, for --diff (no secrets: the token is never here)."""
    if state is None:
        return {}
    return {name: state.get(name) for name in COMPARED if state.get(name) is not None}


def endpoints(group: dict[str, Any] | None) -> dict[str, Any]:
    """Return the configuration, primary, reader and client endpoints, each {address, port}.

    Cluster mode has a configuration endpoint and no primary or reader endpoint; cluster
    mode disabled has primary and reader endpoints. `endpoint` is the one a client uses.
    An endpoint the API did not report is None.
    """

    def _pair(value: dict[str, Any] | None) -> dict[str, Any] | None:
        if not value or not value.get("Address"):
            return None
        return {"address": value["Address"], "port": value.get("Port")}

    group = group or {}
    node_groups = group.get("NodeGroups") or []
    first = node_groups[0] if node_groups else {}
    configuration = _pair(group.get("ConfigurationEndpoint"))
    primary = _pair(first.get("PrimaryEndpoint")) if not configuration else None
    reader = _pair(first.get("ReaderEndpoint")) if not configuration else None
    return {
        "configuration_endpoint": configuration,
        "primary_endpoint": primary,
        "reader_endpoint": reader,
        "endpoint": configuration or primary,
    }


# Waiting. The API reference gives a replication group's Status as one of creating,
# available, modifying, deleting, create-failed and snapshotting (botocore's own
# ReplicationGroupAvailable waiter also knows `deleted`). Only `available` lets AWS take
# ModifyReplicationGroup, the resize calls, DeleteReplicationGroup and the tag calls
# (InvalidReplicationGroupState otherwise). botocore's waiter fails only on `deleted`, so a
# group AWS could not create would be waited on until the timeout.

# Statuses from which a group never becomes available by waiting, and what to do about it.
NEVER_AVAILABLE = {
    "create-failed": "AWS could not create it; delete it and run again",
    "deleting": "it is being deleted and will not become available",
    "deleted": "it has been deleted",
}

# What a wait can be for: "available" (to use the group), "deletable" (state=absent: the
# group can be deleted, or needs no delete) and "gone" (deleted).
WAIT_TARGETS = ("available", "deletable", "gone")


def wait_outcome(target: str, group_id: str, group: dict[str, Any] | None) -> tuple[str, str]:
    """Decide one poll of a wait: ("done" | "wait" | "fail", message when it fails).

    `group` is the DescribeReplicationGroups entry, None when AWS no longer knows the id.
    """
    if target not in WAIT_TARGETS:
        raise ValueError(f"unknown wait target {target!r}")
    status = None if group is None else group.get("Status")
    if target == "gone":
        if group is None or status == "deleted":
            return "done", ""
        if status == "available":
            # botocore's ReplicationGroupDeleted waiter fails on this too: nothing is
            # deleting the group.
            return "fail", f"{group_id} is available: AWS is not deleting it"
        return "wait", ""
    if target == "deletable":
        # AWS deletes an available group; a create-failed group can only be deleted; a
        # deleting or vanished group needs no delete.
        if group is None or status in ("available", "create-failed", "deleting", "deleted"):
            return "done", ""
        return "wait", ""
    if group is None:
        return "fail", f"{group_id} does not exist any more"
    if status == "available":
        return "done", ""
    if status in NEVER_AVAILABLE:
        return "fail", f"{group_id} is {status}: {NEVER_AVAILABLE[status]}"
    return "wait", ""
