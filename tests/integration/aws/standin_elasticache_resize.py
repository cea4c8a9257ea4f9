"""ElastiCache's resize APIs as AWS documents them, for ``moto_compat.py``.

moto 5.2 does not implement IncreaseReplicaCount, DecreaseReplicaCount nor
ModifyReplicationGroupShardConfiguration. ``install()`` adds them on moto's replication
group model, written from AWS's API reference (botocore's ElastiCache model and the
ElastiCache user guide's online resharding pages):

* All three need ``ApplyImmediately=true`` ("ApplyImmediately=False is not currently
  supported"; "the only permitted value for this parameter is true"): anything else is
  ``InvalidParameterValue``.
* All three are refused with ``InvalidReplicationGroupState`` unless the group is
  ``available``; a successful call makes the group (and its node groups) ``modifying`` for
  ``STANDIN_CACHE_MODIFY_SECONDS``, as ModifyReplicationGroup does (``standin_lifecycle``),
  then ``available``. Each call, refused or not, is in the stand-in's call log
  (``GET /cachestack-standin/calls``) with the group id as its resource.
* IncreaseReplicaCount / DecreaseReplicaCount take ``NewReplicaCount`` (every node group)
  or ``ReplicaConfiguration`` (``ConfigureShard``: NodeGroupId, NewReplicaCount), not both
  (``InvalidParameterCombination``) and not neither (``InvalidParameterValue``);
  DecreaseReplicaCount also takes ``ReplicasToRemove`` (member cluster ids) instead. A
  count above 5 ("The maximum value for NewReplicaCount is 5"), an increase that lowers or
  a decrease that raises a node group's count, and an unknown node group are
  ``InvalidParameterValue``; a call that changes no node group is ``NoOperationFault``
  ("no changes were required"). The minimum (DecreaseReplicaCount's reference): a cluster
  mode disabled group with Multi-AZ (or automatic failover, which CreateReplicationGroup
  says needs at least 2 clusters) keeps 1 replica (``InvalidParameterCombination``); a
  cluster mode enabled group may go to 0. Replicas are added with the next member
  numbers, and removed from the highest numbers down; the primary is never removed.
* ModifyReplicationGroupShardConfiguration is for cluster mode enabled groups only
  (``InvalidParameterCombination`` otherwise). ``NodeGroupCount`` below 1 is
  ``InvalidParameterValue``; above 500 (the most node groups AWS lets a group have, once
  the account's quota is raised) ``NodeGroupsPerReplicationGroupQuotaExceeded``. More node
  groups: the new ones get the next free ids and "the same number of nodes as the smallest
  of the existing shards", in the zones ``ReshardingConfiguration`` names when it does.
  Fewer: exactly one of ``NodeGroupsToRemove`` and ``NodeGroupsToRetain`` is required
  (neither: ``InvalidParameterValue``; both: ``InvalidParameterCombination``), naming
  existing node groups and leaving ``NodeGroupCount`` of them. The same count rebalances
  the slots (the reference: "add shards, remove shards, or rebalance the keyspaces among
  existing shards"). ``ReshardingConfiguration`` is accepted only when adding, and the
  remove/retain lists only when removing (``InvalidParameterCombination``). After each
  call the 16384 slots are spread evenly over the node groups, as AWS's online resharding
  and rebalancing do.

The group's ``MemberClusters`` follow the node groups, so DescribeCacheClusters (see
``standin_elasticache_engines.py``) describes the new members and forgets the removed ones.
"""

from __future__ import annotations

from typing import Any

import standin_lifecycle
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.core.utils import camelcase_to_underscores
from moto.elasticache.exceptions import (
    InvalidParameterCombinationException,
    InvalidParameterValueException,
    ReplicationGroupNotFound,
)
from moto.elasticache.responses import ElastiCacheResponse

MAX_REPLICAS = 5
MAX_NODE_GROUPS = 500
SLOTS = 16384


class NoOperationFault(ServiceException):
    code = "NoOperationFault"


class NodeGroupsPerReplicationGroupQuotaExceeded(ServiceException):
    code = "NodeGroupsPerReplicationGroupQuotaExceeded"


# --- The group's shape ---------------------------------------------------------------


def _cluster_enabled(group: Any) -> bool:
    return str(getattr(group, "cluster_mode", "disabled")).lower() == "enabled"


def _replicas(node_group: dict[str, Any]) -> int:
    return len(node_group["node_group_members"]) - 1


def _number(cluster_id: str) -> int:
    return int(cluster_id.rsplit("-", 1)[1])


def _domain(group: Any) -> str:
    """The group's DNS domain, read from an endpoint moto made."""
    for node_group in group.node_groups:
        address = node_group.get("primary_endpoint_address")
        if address:
            return str(address).split(".", 1)[1]
    return f"{group.replication_group_id}.standin.use1.cache.amazonaws.com"


def _member(
    group: Any, node_group: dict[str, Any], number: int, zone: str | None
) -> dict[str, Any]:
    """A new node group member (primary when number is 1), shaped as moto makes them."""
    group_id = group.replication_group_id
    if _cluster_enabled(group):
        cluster_id = f"{group_id}-{node_group['node_group_id']}-{number:0>3}"
        member = {"cache_cluster_id": cluster_id, "cache_node_id": node_group["node_group_id"]}
    else:
        cluster_id = f"{group_id}-{number:0>3}"
        member = {
            "cache_cluster_id": cluster_id,
            "cache_node_id": node_group["node_group_id"],
            "read_endpoint": {"address": f"{cluster_id}.{_domain(group)}", "port": group.port},
            "current_role": "primary" if number == 1 else "replica",
        }
    member["preferred_availability_zone"] = zone or ("us-east-1a" if number == 1 else "us-east-1b")
    return member


def _sync_members(group: Any) -> None:
    """MemberClusters follow the node groups (and the snapshot source stays a member)."""
    group.member_clusters = [
        member["cache_cluster_id"]
        for node_group in group.node_groups
        for member in node_group["node_group_members"]
    ]
    if group.snapshotting_cluster_id not in (None, *group.member_clusters):
        group.snapshotting_cluster_id = group.member_clusters[-1]


def _set_replicas(group: Any, node_group: dict[str, Any], count: int, remove: list[str]) -> None:
    members = node_group["node_group_members"]
    primary, replicas = members[0], members[1:]
    replicas = [member for member in replicas if member["cache_cluster_id"] not in remove]
    replicas.sort(key=lambda member: _number(member["cache_cluster_id"]))
    del replicas[count:]
    used = {_number(member["cache_cluster_id"]) for member in [primary, *members[1:]]}
    number = max(used)
    while len(replicas) < count:
        number += 1
        replicas.append(_member(group, node_group, number, None))
    node_group["node_group_members"] = [primary, *replicas]


def _spread_slots(group: Any) -> None:
    """Spread the 16384 slots evenly over the node groups, in node group order."""
    count = len(group.node_groups)
    start = 0
    for index, node_group in enumerate(group.node_groups):
        end = (index + 1) * SLOTS // count - 1
        node_group["slots"] = f"{start}-{end}"
        start = end + 1


# --- Checks --------------------------------------------------------------------------


def _group(response: Any) -> Any:
    group_id = response._get_param("ReplicationGroupId")
    group = response.elasticache_backend.replication_groups.get(group_id or "")
    if group is None:
        raise ReplicationGroupNotFound(group_id)
    return group


def _available(response: Any, group_id: str | None) -> None:
    _group(response)
    standin_lifecycle._group_available(response, group_id)


def _apply_immediately(response: Any) -> None:
    if str(response._get_param("ApplyImmediately", "")).lower() != "true":
        raise InvalidParameterValueException(
            "ApplyImmediately must be true: the resize APIs accept no other value."
        )


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidParameterValueException(f"{name} must be an integer.") from None


def _wanted_replicas(response: Any, group: Any, increase: bool) -> dict[str, int]:
    """{node group id: new replica count} asked by an Increase/DecreaseReplicaCount call."""
    count = response._get_param("NewReplicaCount")
    configuration = response._get_param("ReplicaConfiguration") or []
    to_remove = (response._get_param("ReplicasToRemove") or []) if not increase else []
    given = [
        name
        for name, value in (
            ("NewReplicaCount", count),
            ("ReplicaConfiguration", configuration),
            ("ReplicasToRemove", to_remove),
        )
        if value not in (None, [])
    ]
    if len(given) > 1:
        raise InvalidParameterCombinationException(
            f"Only one of {' and '.join(given)} may be specified."
        )
    if not given:
        options = "NewReplicaCount or ReplicaConfiguration"
        raise InvalidParameterValueException(
            f"Specify {options}{'' if increase else ' or ReplicasToRemove'}."
        )
    node_groups = {node_group["node_group_id"]: node_group for node_group in group.node_groups}
    if count is not None:
        return {ngid: _int(count, "NewReplicaCount") for ngid in node_groups}
    if configuration:
        wanted = {}
        for shard in configuration:
            ngid = str(shard.get("NodeGroupId", ""))
            if ngid not in node_groups:
                raise InvalidParameterValueException(
                    f"Node group {ngid} is not a node group of {group.replication_group_id}."
                )
            wanted[ngid] = _int(shard.get("NewReplicaCount"), "NewReplicaCount")
        return wanted
    # ReplicasToRemove: member cluster ids of replicas.
    wanted = {}
    for cluster_id in to_remove:
        for ngid, node_group in node_groups.items():
            ids = [member["cache_cluster_id"] for member in node_group["node_group_members"]]
            if cluster_id in ids[1:]:
                wanted[ngid] = wanted.get(ngid, _replicas(node_group)) - 1
                break
        else:
            raise InvalidParameterValueException(
                f"{cluster_id} is not a replica of {group.replication_group_id}."
            )
    return wanted


def _check_replicas(group: Any, wanted: dict[str, int], increase: bool) -> None:
    node_groups = {node_group["node_group_id"]: node_group for node_group in group.node_groups}
    failover = group.automatic_failover == "enabled" or group.multi_az == "enabled"
    minimum = 1 if failover and not _cluster_enabled(group) else 0
    for ngid, count in wanted.items():
        current = _replicas(node_groups[ngid])
        if count > MAX_REPLICAS:
            raise InvalidParameterValueException(
                f"NewReplicaCount {count} for node group {ngid}: the maximum is {MAX_REPLICAS}."
            )
        if count < 0:
            raise InvalidParameterValueException(f"NewReplicaCount {count} is below 0.")
        if increase and count < current:
            raise InvalidParameterValueException(
                f"Node group {ngid} has {current} replicas: IncreaseReplicaCount cannot make "
                f"it {count}."
            )
        if not increase and count > current:
            raise InvalidParameterValueException(
                f"Node group {ngid} has {current} replicas: DecreaseReplicaCount cannot make "
                f"it {count}."
            )
        if count < minimum:
            raise InvalidParameterCombinationException(
                f"Replication group {group.replication_group_id} has Multi-AZ or automatic "
                f"failover enabled: it needs at least {minimum} replica."
            )
    if all(_replicas(node_groups[ngid]) == count for ngid, count in wanted.items()):
        raise NoOperationFault(
            f"Replication group {group.replication_group_id} already has these replica counts."
        )


# --- The calls -----------------------------------------------------------------------


def _resize_replicas(response: Any, increase: bool) -> ActionResult:
    group = _group(response)
    _apply_immediately(response)
    wanted = _wanted_replicas(response, group, increase)
    _check_replicas(group, wanted, increase)
    remove = [] if increase else list(response._get_param("ReplicasToRemove") or [])
    for node_group in group.node_groups:
        if node_group["node_group_id"] in wanted:
            _set_replicas(group, node_group, wanted[node_group["node_group_id"]], remove)
    _sync_members(group)
    return ActionResult({"ReplicationGroup": group})


def _increase_replica_count(self: ElastiCacheResponse) -> ActionResult:
    return _resize_replicas(self, increase=True)


def _decrease_replica_count(self: ElastiCacheResponse) -> ActionResult:
    return _resize_replicas(self, increase=False)


def _ids(response: Any, name: str) -> list[str]:
    return [str(value) for value in response._get_param(name) or []]


def _modify_shard_configuration(self: ElastiCacheResponse) -> ActionResult:
    group = _group(self)
    group_id = group.replication_group_id
    if not _cluster_enabled(group):
        raise InvalidParameterCombinationException(
            f"Replication group {group_id} is not cluster mode enabled: its shards cannot be "
            "configured."
        )
    _apply_immediately(self)
    count = _int(self._get_param("NodeGroupCount"), "NodeGroupCount")
    if count < 1:
        raise InvalidParameterValueException(f"NodeGroupCount {count} is below 1.")
    if count > MAX_NODE_GROUPS:
        raise NodeGroupsPerReplicationGroupQuotaExceeded(
            f"NodeGroupCount {count}: a replication group has at most {MAX_NODE_GROUPS} node "
            "groups."
        )
    to_remove, to_retain = _ids(self, "NodeGroupsToRemove"), _ids(self, "NodeGroupsToRetain")
    resharding = self._get_param("ReshardingConfiguration") or []
    current = [node_group["node_group_id"] for node_group in group.node_groups]
    if count <= len(current) and resharding:
        raise InvalidParameterCombinationException(
            "ReshardingConfiguration can be specified only when NodeGroupCount is greater than "
            f"the current number of node groups ({len(current)})."
        )
    if count >= len(current) and (to_remove or to_retain):
        raise InvalidParameterCombinationException(
            "NodeGroupsToRemove and NodeGroupsToRetain can be specified only when "
            f"NodeGroupCount is less than the current number of node groups ({len(current)})."
        )
    if count < len(current):
        if to_remove and to_retain:
            raise InvalidParameterCombinationException(
                "Specify NodeGroupsToRemove or NodeGroupsToRetain, not both."
            )
        if not to_remove and not to_retain:
            raise InvalidParameterValueException(
                f"NodeGroupCount {count} is less than the current number of node groups "
                f"({len(current)}): NodeGroupsToRemove or NodeGroupsToRetain is required."
            )
        unknown = sorted(set(to_remove or to_retain) - set(current))
        if unknown:
            raise InvalidParameterValueException(
                f"Node groups {', '.join(unknown)} are not node groups of {group_id}."
            )
        kept = (
            [ngid for ngid in current if ngid not in to_remove]
            if to_remove
            else [ngid for ngid in current if ngid in to_retain]
        )
        if len(kept) != count:
            raise InvalidParameterValueException(
                f"NodeGroupCount is {count}, but the request leaves {len(kept)} node groups."
            )
        group.node_groups = [ng for ng in group.node_groups if ng["node_group_id"] in kept]
    elif count > len(current):
        nodes = min(len(node_group["node_group_members"]) for node_group in group.node_groups)
        used = {int(ngid) for ngid in current}
        template = group.node_groups[0]
        for index in range(count - len(current)):
            config = resharding[index] if index < len(resharding) else {}
            ngid = str(config.get("NodeGroupId") or "")
            if not ngid or int(ngid) in used:
                ngid = f"{max(used) + 1:0>4}"
            used.add(int(ngid))
            zones = list(config.get("PreferredAvailabilityZones") or [])
            node_group: dict[str, Any] = {
                "node_group_id": ngid,
                "status": template["status"],
                "node_group_members": [],
            }
            for number in range(1, nodes + 1):
                zone = zones[number - 1] if number <= len(zones) else None
                node_group["node_group_members"].append(_member(group, node_group, number, zone))
            group.node_groups.append(node_group)
    _spread_slots(group)
    _sync_members(group)
    return ActionResult({"ReplicationGroup": group})


OPERATIONS = {
    "IncreaseReplicaCount": _increase_replica_count,
    "DecreaseReplicaCount": _decrease_replica_count,
    "ModifyReplicationGroupShardConfiguration": _modify_shard_configuration,
}


def install() -> None:
    """Add the three calls to moto (once, before the server starts), logged and guarded."""
    for operation, method in OPERATIONS.items():
        setattr(ElastiCacheResponse, camelcase_to_underscores(operation), method)
        standin_lifecycle._guard(
            ElastiCacheResponse,
            "elasticache",
            operation,
            ("ReplicationGroupId",),
            check=_available,
            after=standin_lifecycle._group_modified,
        )
