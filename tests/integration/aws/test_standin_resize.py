"""The stand-in's resize APIs (``standin_elasticache_resize.py``): one test per rule.

Each test shows the stand-in refusing a call as AWS documents it (AWS's error code), then
accepting it: the group goes ``modifying`` (refusing another resize meanwhile), then
``available``, and DescribeReplicationGroups / DescribeCacheClusters show the new shape.
The module has its own server (conftest's ``moto_url`` is module-scoped), with short states.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.aws.test_standin import client, refused, standin_calls, wait_for
from tests.servers.moto import reset_moto

STATES = {
    "STANDIN_CACHE_CREATE_SECONDS": "1",
    "STANDIN_CACHE_MODIFY_SECONDS": "1",
    "STANDIN_CACHE_DELETE_SECONDS": "1",
}


@pytest.fixture(scope="module")
def standin_durations() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in STATES.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def moto_url(standin_durations: None, moto_url: str) -> str:
    """conftest's server, started after ``standin_durations`` set the environment."""
    return moto_url


@pytest.fixture
def elasticache(moto_url: str) -> Any:
    reset_moto(moto_url)
    return client(moto_url, "elasticache")


def describe(elasticache: Any, group_id: str) -> dict[str, Any]:
    groups = elasticache.describe_replication_groups(ReplicationGroupId=group_id)
    return dict(groups["ReplicationGroups"][0])


def shape(group: dict[str, Any]) -> dict[str, list[str]]:
    """{node group id: its member cluster ids, in order}."""
    return {
        node_group["NodeGroupId"]: [m["CacheClusterId"] for m in node_group["NodeGroupMembers"]]
        for node_group in group["NodeGroups"]
    }


def create(elasticache: Any, group_id: str, cluster: bool, shards: int, replicas: int) -> None:
    extra: dict[str, Any] = {"ClusterMode": "enabled"} if cluster else {}
    elasticache.create_replication_group(
        ReplicationGroupId=group_id,
        ReplicationGroupDescription="resize",
        Engine="valkey",
        NumNodeGroups=shards,
        ReplicasPerNodeGroup=replicas,
        AutomaticFailoverEnabled=True,
        MultiAZEnabled=True,
        **extra,
    )


def available(elasticache: Any, group_id: str) -> None:
    wait_for(
        f"{group_id} to be available",
        lambda: describe(elasticache, group_id)["Status"] == "available",
    )


def accepted_then_modifying(elasticache: Any, group_id: str, call: Any, **params: Any) -> None:
    """The call is accepted; the group is modifying (refusing resizes), then available."""
    answer = call(ReplicationGroupId=group_id, ApplyImmediately=True, **params)
    assert answer["ReplicationGroup"]["Status"] == "modifying"
    group = describe(elasticache, group_id)
    assert group["Status"] == "modifying"
    assert {node_group["Status"] for node_group in group["NodeGroups"]} == {"modifying"}
    refused(
        "InvalidReplicationGroupState",
        call,
        ReplicationGroupId=group_id,
        ApplyImmediately=True,
        **params,
    )
    available(elasticache, group_id)


def members(elasticache: Any, group_id: str) -> set[str]:
    """The member clusters DescribeCacheClusters lists for the group."""
    return {
        cluster["CacheClusterId"]
        for cluster in elasticache.describe_cache_clusters()["CacheClusters"]
        if cluster.get("ReplicationGroupId") == group_id
    }


def test_increase_replica_count(elasticache: Any) -> None:
    create(elasticache, "grow", cluster=True, shards=2, replicas=1)
    increase = elasticache.increase_replica_count
    # Creating: AWS refuses every resize until the group is available.
    refused("InvalidReplicationGroupState", increase, ReplicationGroupId="grow",
            ApplyImmediately=True, NewReplicaCount=2)  # fmt: skip
    available(elasticache, "grow")

    base = {"ReplicationGroupId": "grow"}
    refused("InvalidParameterValue", increase, **base, ApplyImmediately=False, NewReplicaCount=2)
    refused("InvalidParameterValue", increase, **base, ApplyImmediately=True, NewReplicaCount=6)
    refused("InvalidParameterValue", increase, **base, ApplyImmediately=True)
    refused("NoOperationFault", increase, **base, ApplyImmediately=True, NewReplicaCount=1)
    refused("InvalidParameterValue", increase, **base, ApplyImmediately=True, NewReplicaCount=0)
    both = {"NewReplicaCount": 2, "ReplicaConfiguration": [
        {"NodeGroupId": "0001", "NewReplicaCount": 2}]}  # fmt: skip
    refused("InvalidParameterCombination", increase, **base, ApplyImmediately=True, **both)
    unknown = [{"NodeGroupId": "0009", "NewReplicaCount": 2}]
    refused("InvalidParameterValue", increase, **base, ApplyImmediately=True,
            ReplicaConfiguration=unknown)  # fmt: skip
    refused("ReplicationGroupNotFoundFault", increase, ReplicationGroupId="nothing",
            ApplyImmediately=True, NewReplicaCount=2)  # fmt: skip
    assert shape(describe(elasticache, "grow")) == {
        "0001": ["grow-0001-001", "grow-0001-002"],
        "0002": ["grow-0002-001", "grow-0002-002"],
    }

    accepted_then_modifying(elasticache, "grow", increase, NewReplicaCount=2)
    group = describe(elasticache, "grow")
    assert shape(group) == {
        "0001": ["grow-0001-001", "grow-0001-002", "grow-0001-003"],
        "0002": ["grow-0002-001", "grow-0002-002", "grow-0002-003"],
    }
    listed = [cluster_id for ids in shape(group).values() for cluster_id in ids]
    assert sorted(group["MemberClusters"]) == sorted(listed)
    assert members(elasticache, "grow") == set(group["MemberClusters"])

    # One node group only, with ReplicaConfiguration.
    config = [{"NodeGroupId": "0002", "NewReplicaCount": 5}]
    accepted_then_modifying(elasticache, "grow", increase, ReplicaConfiguration=config)
    counts = {ngid: len(ids) - 1 for ngid, ids in shape(describe(elasticache, "grow")).items()}
    assert counts == {"0001": 2, "0002": 5}
    assert len(members(elasticache, "grow")) == 3 + 6


def test_decrease_replica_count(elasticache: Any) -> None:
    create(elasticache, "plain", cluster=False, shards=1, replicas=2)
    create(elasticache, "shrink", cluster=True, shards=2, replicas=2)
    available(elasticache, "plain")
    available(elasticache, "shrink")
    decrease = elasticache.decrease_replica_count

    # Cluster mode disabled with Multi-AZ: at least one replica stays.
    plain = {"ReplicationGroupId": "plain", "ApplyImmediately": True}
    refused("InvalidParameterCombination", decrease, **plain, NewReplicaCount=0)
    refused("InvalidParameterValue", decrease, **plain, NewReplicaCount=3)
    refused("NoOperationFault", decrease, **plain, NewReplicaCount=2)
    refused("InvalidParameterValue", decrease, ReplicationGroupId="plain",
            ApplyImmediately=False, NewReplicaCount=1)  # fmt: skip
    accepted_then_modifying(elasticache, "plain", decrease, NewReplicaCount=1)
    group = describe(elasticache, "plain")
    assert shape(group) == {"0001": ["plain-001", "plain-002"]}
    assert group["MemberClusters"] == ["plain-001", "plain-002"]
    assert members(elasticache, "plain") == {"plain-001", "plain-002"}

    # Cluster mode enabled: down to 0 is allowed (no failover then), one replica by name.
    shrink = {"ReplicationGroupId": "shrink", "ApplyImmediately": True}
    refused("InvalidParameterValue", decrease, **shrink, ReplicasToRemove=["shrink-0001-001"])
    refused("InvalidParameterCombination", decrease, **shrink, NewReplicaCount=1,
            ReplicasToRemove=["shrink-0001-002"])  # fmt: skip
    accepted_then_modifying(elasticache, "shrink", decrease, ReplicasToRemove=["shrink-0001-002"])
    assert shape(describe(elasticache, "shrink")) == {
        "0001": ["shrink-0001-001", "shrink-0001-003"],
        "0002": ["shrink-0002-001", "shrink-0002-002", "shrink-0002-003"],
    }
    accepted_then_modifying(elasticache, "shrink", decrease, NewReplicaCount=0)
    group = describe(elasticache, "shrink")
    assert shape(group) == {"0001": ["shrink-0001-001"], "0002": ["shrink-0002-001"]}
    assert members(elasticache, "shrink") == {"shrink-0001-001", "shrink-0002-001"}


def slots(group: dict[str, Any]) -> list[str]:
    return [node_group["Slots"] for node_group in group["NodeGroups"]]


def test_modify_shard_configuration(elasticache: Any) -> None:
    create(elasticache, "plain", cluster=False, shards=1, replicas=1)
    create(elasticache, "shards", cluster=True, shards=1, replicas=1)
    modify = elasticache.modify_replication_group_shard_configuration
    refused("InvalidReplicationGroupState", modify, ReplicationGroupId="shards",
            NodeGroupCount=3, ApplyImmediately=True)  # fmt: skip
    available(elasticache, "plain")
    available(elasticache, "shards")
    refused("InvalidParameterCombination", modify, ReplicationGroupId="plain",
            NodeGroupCount=2, ApplyImmediately=True)  # fmt: skip

    base = {"ReplicationGroupId": "shards"}
    refused("InvalidParameterValue", modify, **base, NodeGroupCount=3, ApplyImmediately=False)
    refused("InvalidParameterValue", modify, **base, NodeGroupCount=0, ApplyImmediately=True)
    refused("NodeGroupsPerReplicationGroupQuotaExceeded", modify, **base, NodeGroupCount=501,
            ApplyImmediately=True)  # fmt: skip
    refused("InvalidParameterCombination", modify, **base, NodeGroupCount=3,
            ApplyImmediately=True, NodeGroupsToRetain=["0001"])  # fmt: skip

    # 1 -> 3: the new shards have as many nodes as the smallest one, the slots are spread.
    zones = [{"PreferredAvailabilityZones": ["us-east-1c", "us-east-1a"]}]
    accepted_then_modifying(elasticache, "shards", modify, NodeGroupCount=3,
                            ReshardingConfiguration=zones)  # fmt: skip
    group = describe(elasticache, "shards")
    assert shape(group) == {
        "0001": ["shards-0001-001", "shards-0001-002"],
        "0002": ["shards-0002-001", "shards-0002-002"],
        "0003": ["shards-0003-001", "shards-0003-002"],
    }
    assert slots(group) == ["0-5460", "5461-10921", "10922-16383"]
    assert group["NodeGroups"][1]["NodeGroupMembers"][0]["PreferredAvailabilityZone"] == (
        "us-east-1c"
    )
    assert members(elasticache, "shards") == set(group["MemberClusters"])
    assert len(group["MemberClusters"]) == 6

    # 3 -> 2: which node groups go must be named, once, and leave NodeGroupCount of them.
    two = {**base, "NodeGroupCount": 2, "ApplyImmediately": True}
    refused("InvalidParameterValue", modify, **two)
    refused("InvalidParameterCombination", modify, **two, NodeGroupsToRemove=["0002"],
            NodeGroupsToRetain=["0001", "0003"])  # fmt: skip
    refused("InvalidParameterValue", modify, **two, NodeGroupsToRemove=["0007"])
    refused("InvalidParameterValue", modify, **two, NodeGroupsToRetain=["0001"])
    refused("InvalidParameterCombination", modify, **two, NodeGroupsToRemove=["0002"],
            ReshardingConfiguration=zones)  # fmt: skip
    accepted_then_modifying(elasticache, "shards", modify, NodeGroupCount=2,
                            NodeGroupsToRemove=["0002"])  # fmt: skip
    group = describe(elasticache, "shards")
    assert shape(group) == {
        "0001": ["shards-0001-001", "shards-0001-002"],
        "0003": ["shards-0003-001", "shards-0003-002"],
    }
    assert slots(group) == ["0-8191", "8192-16383"]
    assert members(elasticache, "shards") == {
        "shards-0001-001", "shards-0001-002", "shards-0003-001", "shards-0003-002"
    }  # fmt: skip

    # 2 -> 1 with NodeGroupsToRetain.
    accepted_then_modifying(elasticache, "shards", modify, NodeGroupCount=1,
                            NodeGroupsToRetain=["0003"])  # fmt: skip
    group = describe(elasticache, "shards")
    assert shape(group) == {"0003": ["shards-0003-001", "shards-0003-002"]}
    assert slots(group) == ["0-16383"]

    # The same count rebalances the keyspace (still a change: the group modifies).
    accepted_then_modifying(elasticache, "shards", modify, NodeGroupCount=1)
    assert shape(describe(elasticache, "shards")) == {
        "0003": ["shards-0003-001", "shards-0003-002"]
    }


def test_resize_calls_are_in_the_call_log(moto_url: str, elasticache: Any) -> None:
    create(elasticache, "logged", cluster=True, shards=1, replicas=1)
    refused("InvalidReplicationGroupState", elasticache.increase_replica_count,
            ReplicationGroupId="logged", ApplyImmediately=True, NewReplicaCount=2)  # fmt: skip
    available(elasticache, "logged")
    elasticache.increase_replica_count(
        ReplicationGroupId="logged", ApplyImmediately=True, NewReplicaCount=2
    )
    available(elasticache, "logged")
    refused("InvalidParameterCombination", elasticache.decrease_replica_count,
            ReplicationGroupId="logged", ApplyImmediately=True, NewReplicaCount=1,
            ReplicasToRemove=["logged-0001-002"])  # fmt: skip
    elasticache.decrease_replica_count(
        ReplicationGroupId="logged", ApplyImmediately=True, NewReplicaCount=1
    )
    available(elasticache, "logged")
    elasticache.modify_replication_group_shard_configuration(
        ReplicationGroupId="logged", NodeGroupCount=2, ApplyImmediately=True
    )
    logged = [
        (call["operation"], call["resource"], call["error"])
        for call in standin_calls(moto_url)
        if call["operation"] != "CreateReplicationGroup"
    ]
    assert logged == [
        ("IncreaseReplicaCount", "logged", "InvalidReplicationGroupState"),
        ("IncreaseReplicaCount", "logged", None),
        ("DecreaseReplicaCount", "logged", "InvalidParameterCombination"),
        ("DecreaseReplicaCount", "logged", None),
        ("ModifyReplicationGroupShardConfiguration", "logged", None),
    ]
