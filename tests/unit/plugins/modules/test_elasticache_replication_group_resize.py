"""Resizing shards whose replica counts differ: the replica calls follow the shard change.

AWS refuses a ReplicaConfiguration naming a node group that is gone (the shard call
removed it), and gives a shard it adds as many nodes as the smallest shard has, with an id
of its choosing. The module plans the replica calls for the node groups the shard call
leaves, and plans them again once AWS has added shards.
"""

from __future__ import annotations

from typing import Any

from botocore.stub import Stubber

from tests.unit.plugins.modules.test_elasticache_replication_group import (  # noqa: F401  # pylint: disable=unused-import
    GROUP_ID,
    existing_group,
    expect_change,
    expect_read,
    expect_statuses,
    fast_wait,
    group_of,
    member_of,
    plan,
    run_present,
    stubbed,
)

SHARDS = "modify_replication_group_shard_configuration"


def test_replicas_after_shards_drops_removed_and_adds_the_smallest_size() -> None:
    group = group_of([2, 1, 3])
    retain = {"NodeGroupCount": 1, "NodeGroupsToRetain": ["0001"]}
    remove = {"NodeGroupCount": 2, "NodeGroupsToRemove": ["0002"]}
    grow = {"NodeGroupCount": 5}
    assert plan.replicas_after_shards(group, None) == {"0001": 2, "0002": 1, "0003": 3}
    assert plan.replicas_after_shards(group, retain) == {"0001": 2}
    assert plan.replicas_after_shards(group, remove) == {"0001": 2, "0003": 3}
    assert plan.replicas_after_shards(group, grow) == {
        "0001": 2, "0002": 1, "0003": 3, "+1": 1, "+2": 1
    }  # fmt: skip


def test_plan_replicas_never_names_a_removed_node_group() -> None:
    group = group_of([2, 1])
    params = {"replicas_per_node_group": 2}
    shards = plan.plan_shards({"num_node_groups": 1}, group)
    assert shards == {
        "ReplicationGroupId": GROUP_ID,
        "NodeGroupCount": 1,
        "ApplyImmediately": True,
        "NodeGroupsToRetain": ["0001"],
    }
    # Without the shard request 0002 would be named; after it, 0001 already has 2.
    assert plan.plan_replicas(params, group) == [
        (
            "IncreaseReplicaCount",
            {
                "ReplicationGroupId": GROUP_ID,
                "ApplyImmediately": True,
                "ReplicaConfiguration": [{"NodeGroupId": "0002", "NewReplicaCount": 2}],
            },
        )
    ]
    assert plan.plan_replicas(params, group, shards) == []


def test_plan_replicas_counts_new_shards_at_the_smallest_size() -> None:
    params = {"replicas_per_node_group": 2}
    # Every shard, new ones included, is below 2: one NewReplicaCount covers them.
    even = group_of([1, 1])
    assert plan.plan_replicas(params, even, {"NodeGroupCount": 3}) == [
        (
            "IncreaseReplicaCount",
            {"ReplicationGroupId": GROUP_ID, "ApplyImmediately": True, "NewReplicaCount": 2},
        )
    ]
    # Uneven: the known node group is named; the new one (id unknown) is left for the replan.
    uneven = group_of([1, 2])
    assert plan.plan_replicas(params, uneven, {"NodeGroupCount": 3}) == [
        (
            "IncreaseReplicaCount",
            {
                "ReplicationGroupId": GROUP_ID,
                "ApplyImmediately": True,
                "ReplicaConfiguration": [{"NodeGroupId": "0001", "NewReplicaCount": 2}],
            },
        )
    ]


def test_removing_a_shard_does_not_resize_it_first(
    stubbed: tuple[Any, Stubber],  # noqa: F811
    fast_wait: None,  # noqa: F811
) -> None:
    client, stubber = stubbed
    group = existing_group(stubber, [2, 1])
    after = group_of([2])
    expect_change(
        stubber, SHARDS, group, NodeGroupCount=1, ApplyImmediately=True, NodeGroupsToRetain=["0001"]
    )
    manager = run_present(client, stubber, after, num_node_groups=1, replicas_per_node_group=2)
    assert manager.actions == ["ModifyReplicationGroupShardConfiguration NodeGroupCount=1"]


def test_new_shards_get_their_replicas_in_the_same_run(
    stubbed: tuple[Any, Stubber],  # noqa: F811
    fast_wait: None,  # noqa: F811
) -> None:
    client, stubber = stubbed
    group = existing_group(stubber, [1, 2])
    resharded = group_of([1, 2, 1])  # AWS added 0003 with the smallest shard's size
    expect_change(stubber, SHARDS, group, NodeGroupCount=3, ApplyImmediately=True)
    # The wait after the shard call, whose answer the replica calls are planned from.
    expect_statuses(stubber, "modifying", "available", group=resharded)
    expect_change(
        stubber,
        "increase_replica_count",
        resharded,
        ApplyImmediately=True,
        ReplicaConfiguration=[
            {"NodeGroupId": "0001", "NewReplicaCount": 2},
            {"NodeGroupId": "0003", "NewReplicaCount": 2},
        ],
    )
    manager = run_present(
        client, stubber, group_of([2, 2, 2]), num_node_groups=3, replicas_per_node_group=2
    )
    assert manager.actions == [
        "ModifyReplicationGroupShardConfiguration NodeGroupCount=3",
        "IncreaseReplicaCount ReplicaConfiguration=0001:2,0003:2",
    ]
