"""cachestack.aws.elasticache_replication_group resizes a running group in place.

Against the AWS stand-in (tests/integration/aws/moto_compat.py), which implements
ModifyReplicationGroupShardConfiguration, IncreaseReplicaCount and DecreaseReplicaCount as
AWS documents them and logs every call: changing num_node_groups (1 -> 3 -> 2) and
replicas_per_node_group (1 -> 2 -> 1) calls exactly those APIs, never DeleteReplicationGroup
nor a second CreateReplicationGroup, keeps the group's ARN and endpoint, and a rerun
changes nothing. Shapes AWS refuses are refused by the module before any call.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

from .conftest import PlayRun, Step
from .test_elasticache_replication_group import GROUP_ARGS, GROUP_ID, describe, ok

RESIZES = (
    "ModifyReplicationGroupShardConfiguration",
    "IncreaseReplicaCount",
    "DecreaseReplicaCount",
)


def logged(url: str) -> list[tuple[str, str | None]]:
    """(operation, error) of every logged call naming the group, oldest first."""
    with urllib.request.urlopen(f"{url}/cachestack-standin/calls", timeout=10) as response:  # noqa: S310
        return [
            (call["operation"], call["error"])
            for call in json.load(response)
            if call["resource"] == GROUP_ID
        ]


def node_groups(client: Any) -> dict[str, int]:
    """{node group id: replicas} as DescribeReplicationGroups shows them."""
    group = describe(client) or {}
    return {ng["NodeGroupId"]: len(ng["NodeGroupMembers"]) - 1 for ng in group["NodeGroups"]}


def add_replicas(client: Any, node_group: str, count: int) -> None:
    """IncreaseReplicaCount of one node group, outside the module: shards made uneven."""
    client.increase_replica_count(
        ReplicationGroupId=GROUP_ID,
        ApplyImmediately=True,
        ReplicaConfiguration=[{"NodeGroupId": node_group, "NewReplicaCount": count}],
    )


def member_clusters(client: Any) -> set[str]:
    group = describe(client) or {}
    listed = set(group["MemberClusters"])
    # Each listed member is one DescribeCacheClusters can describe.
    for member_id in listed:
        client.describe_cache_clusters(CacheClusterId=member_id)
    return listed


def test_shards_and_replicas_change_in_place(
    run_standin_play: Callable[..., PlayRun], standin_elasticache: Any, standin: str
) -> None:
    client = standin_elasticache
    one = dict(GROUP_ARGS, engine="valkey", engine_version="8.2")
    created, again = ok(run_standin_play(Step(one), Step(one)))
    assert created["changed"] and not again["changed"], again["actions"]
    before = describe(client)
    assert before is not None
    assert node_groups(client) == {"0001": 1}
    assert logged(standin) == [("CreateReplicationGroup", None)]

    # 1 -> 3 shards; then 2 replicas per shard; then 2 shards and 1 replica in one run.
    three = dict(one, num_node_groups=3)
    three_by_two = dict(three, replicas_per_node_group=2)
    two = dict(one, num_node_groups=2)
    shards, replicas, both, rerun = ok(
        run_standin_play(Step(three), Step(three_by_two), Step(two), Step(two))
    )
    assert shards["changed"]
    assert shards["actions"] == ["ModifyReplicationGroupShardConfiguration NodeGroupCount=3"]
    assert shards["num_node_groups"] == 3
    assert shards["replicas_per_node_group"] == 1
    assert replicas["actions"] == ["IncreaseReplicaCount NewReplicaCount=2"]
    assert replicas["replicas_per_node_group"] == 2
    assert both["actions"] == [
        "ModifyReplicationGroupShardConfiguration NodeGroupCount=2",
        "DecreaseReplicaCount NewReplicaCount=1",
    ]
    assert (both["num_node_groups"], both["replicas_per_node_group"]) == (2, 1)
    assert not rerun["changed"], rerun["actions"]
    assert rerun["actions"] == []

    # The same group (ARN, endpoint), shaped as asked: the highest shard went.
    after = describe(client)
    assert after is not None
    assert after["ARN"] == before["ARN"]
    assert after["ConfigurationEndpoint"] == before["ConfigurationEndpoint"]
    assert after["Status"] == "available"
    assert node_groups(client) == {"0001": 1, "0002": 1}
    assert member_clusters(client) == {
        f"{GROUP_ID}-{ngid}-{number}" for ngid in ("0001", "0002") for number in ("001", "002")
    }

    # Exactly the resize APIs, each accepted, and no delete nor second create.
    assert logged(standin) == [
        ("CreateReplicationGroup", None),
        ("ModifyReplicationGroupShardConfiguration", None),
        ("IncreaseReplicaCount", None),
        ("ModifyReplicationGroupShardConfiguration", None),
        ("DecreaseReplicaCount", None),
    ]


def test_invalid_shapes_are_refused_before_any_call(
    run_standin_play: Callable[..., PlayRun], standin_elasticache: Any, standin: str
) -> None:
    client = standin_elasticache
    ok(run_standin_play(Step(GROUP_ARGS)))
    calls_before = logged(standin)
    shape_before = node_groups(client)

    cases = [
        ("num_node_groups must be between 1 and 500", {"num_node_groups": 0}),
        ("num_node_groups must be between 1 and 500", {"num_node_groups": 501}),
        ("replicas_per_node_group must be between 0 and 5", {"replicas_per_node_group": 6}),
        (
            "automatic_failover_enabled needs at least one replica",
            {"replicas_per_node_group": 0, "automatic_failover_enabled": True},
        ),
    ]
    results = run_standin_play(
        *(Step(dict(GROUP_ARGS, **args), ignore_errors=True) for _message, args in cases)
    ).results
    for (message, _args), result in zip(cases, results, strict=True):
        assert result["failed"], result
        assert message in result["msg"], result["msg"]
    assert logged(standin) == calls_before
    assert node_groups(client) == shape_before == {"0001": 1}


def test_reshard_of_a_group_with_uneven_shards(
    run_standin_play: Callable[..., PlayRun], standin_elasticache: Any, standin: str
) -> None:
    """Shards with different replica counts (set outside the module): the replica calls
    name only node groups that exist after the shard change, and new shards (created by
    AWS with as many nodes as the smallest shard) get the asked count in the same run."""
    client = standin_elasticache
    two = dict(GROUP_ARGS, num_node_groups=2)
    ok(run_standin_play(Step(two)))
    add_replicas(client, "0001", 2)
    assert node_groups(client) == {"0001": 2, "0002": 1}

    # 2 -> 1 shard at 2 replicas: 0002 goes, 0001 already has 2: one call only.
    one_by_two = dict(GROUP_ARGS, num_node_groups=1, replicas_per_node_group=2)
    shrunk, rerun = ok(run_standin_play(Step(one_by_two), Step(one_by_two)))
    assert shrunk["actions"] == ["ModifyReplicationGroupShardConfiguration NodeGroupCount=1"]
    assert not rerun["changed"], rerun["actions"]
    assert node_groups(client) == {"0001": 2}

    # Uneven again, then 1 -> 3 shards at 2 replicas: the new shards come with 1 replica
    # (the smallest shard's size) and get their second one in the same run.
    client.decrease_replica_count(
        ReplicationGroupId=GROUP_ID, ApplyImmediately=True, NewReplicaCount=1
    )
    ok(run_standin_play(Step(dict(GROUP_ARGS, num_node_groups=2))))
    add_replicas(client, "0002", 2)
    assert node_groups(client) == {"0001": 1, "0002": 2}
    three_by_two = dict(GROUP_ARGS, num_node_groups=3, replicas_per_node_group=2)
    grown, rerun = ok(run_standin_play(Step(three_by_two), Step(three_by_two)))
    assert grown["actions"][0] == "ModifyReplicationGroupShardConfiguration NodeGroupCount=3"
    assert [action.split()[0] for action in grown["actions"][1:]] == ["IncreaseReplicaCount"]
    assert not rerun["changed"], rerun["actions"]
    assert sorted(node_groups(client).values()) == [2, 2, 2]
    assert not [call for call in logged(standin) if call[1] is not None]
