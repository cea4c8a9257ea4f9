"""Unit tests for cachestack.aws.elasticache_replication_group, against botocore's Stubber.

moto does not implement the resize APIs, so these tests check the requests the module
sends (IncreaseReplicaCount, DecreaseReplicaCount, ModifyReplicationGroupShardConfiguration,
ModifyReplicationGroup with AuthToken, tag calls) against the real ElastiCache API shapes:
the Stubber refuses a request or response that does not fit botocore's service model, and
any call the test did not expect.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
import yaml
from botocore.stub import ANY, Stubber

# The collection resolves as ansible_collections.cachestack.aws from the .collections link
# that scripts/setup makes (ansible.cfg's collections_path).
_COLLECTIONS = Path(__file__).resolve().parents[4] / ".collections"
if str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.amazon.aws.plugins.module_utils.retries import (  # noqa: E402
    RetryingBotoClientWrapper,
)
from ansible_collections.cachestack.aws.plugins.module_utils import (  # noqa: E402
    _elasticache as plan,
)
from ansible_collections.cachestack.aws.plugins.modules import (  # noqa: E402
    elasticache_replication_group as erg,
)

GROUP_ID = "cachestack"
ARN = f"arn:aws:elasticache:us-east-1:123456789012:replicationgroup:{GROUP_ID}"
TOKEN = "a-secret-token-of-32-characters!"


class ModuleFailed(Exception):
    """Raised by the fake module's fail_json."""


class FakeModule:
    """The parts of AnsibleAWSModule the manager uses, with a stubbed client."""

    def __init__(self, client: Any, check_mode: bool = False, **params: Any) -> None:
        self.params = {name: spec.get("default") for name, spec in erg.argument_spec().items()}
        self.params.update({"replication_group_id": GROUP_ID, "wait": False})
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = True
        self._client = client
        self.warnings: list[str] = []

    def client(self, service: str, retry_decorator: Any = None) -> Any:
        assert service == "elasticache"
        return RetryingBotoClientWrapper(self._client, retry_decorator)

    def warn(self, warning: str) -> None:
        self.warnings.append(warning)

    def fail_json(self, msg: str, **kwargs: Any) -> None:
        raise ModuleFailed(msg)

    def fail_json_aws(self, exception: BaseException, msg: str = "", **kwargs: Any) -> None:
        raise ModuleFailed(f"{msg}: {exception}")


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "elasticache",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def fast_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """The module's waits poll every 10 ms instead of every WAIT_DELAY seconds."""
    monkeypatch.setattr(erg, "WAIT_DELAY", 0.01)


def node_group(ngid: str, replicas: int, cluster: bool = True) -> dict[str, Any]:
    members = [
        {"CacheClusterId": f"{GROUP_ID}-{ngid}-{i + 1:03d}", "CacheNodeId": "0001"}
        for i in range(replicas + 1)
    ]
    group: dict[str, Any] = {
        "NodeGroupId": ngid,
        "Status": "available",
        "NodeGroupMembers": members,
    }
    if cluster:
        group["Slots"] = "0-16383"
    else:
        group["PrimaryEndpoint"] = {
            "Address": f"master.{GROUP_ID}.x.cache.amazonaws.com",
            "Port": 6379,
        }
        group["ReaderEndpoint"] = {
            "Address": f"replica.{GROUP_ID}.x.cache.amazonaws.com",
            "Port": 6379,
        }
    return group


def group_of(replicas: list[int], cluster: bool = True, **extra: Any) -> dict[str, Any]:
    """A DescribeReplicationGroups entry with one node group per replica count."""
    groups = [node_group(f"{i + 1:04d}", count, cluster) for i, count in enumerate(replicas)]
    group: dict[str, Any] = {
        "ReplicationGroupId": GROUP_ID,
        "Description": "cachestack cache",
        "Status": "available",
        "MemberClusters": [m["CacheClusterId"] for g in groups for m in g["NodeGroupMembers"]],
        "NodeGroups": groups,
        "AutomaticFailover": "enabled",
        "MultiAZ": "enabled",
        "SnapshotRetentionLimit": 1,
        "SnapshotWindow": "05:00-06:00",
        "ClusterEnabled": cluster,
        "ClusterMode": "enabled" if cluster else "disabled",
        "CacheNodeType": "cache.t4g.micro",
        "AuthTokenEnabled": True,
        "TransitEncryptionEnabled": True,
        "TransitEncryptionMode": "required",
        "AtRestEncryptionEnabled": True,
        "Engine": "redis",
        "ARN": ARN,
    }
    if cluster:
        group["ConfigurationEndpoint"] = {
            "Address": f"clustercfg.{GROUP_ID}.x.cache.amazonaws.com",
            "Port": 6379,
        }
    group.update(extra)
    return group


def member_of(group: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The DescribeCacheClusters entry of the group's first member."""
    member = {
        "CacheClusterId": group["MemberClusters"][0],
        "CacheNodeType": group["CacheNodeType"],
        "Engine": "redis",
        "EngineVersion": "7.1.0",
        "CacheClusterStatus": "available",
        "PreferredMaintenanceWindow": "sun:06:30-sun:07:30",
        "CacheParameterGroup": {"CacheParameterGroupName": "default.redis7.cluster.on"},
        "CacheSubnetGroupName": "cachestack-cache",
        "SecurityGroups": [{"SecurityGroupId": "sg-0b", "Status": "active"}],
        "ReplicationGroupId": GROUP_ID,
    }
    member.update(extra)
    return member


def expect_available(stubber: Stubber, group: dict[str, Any]) -> None:
    """One DescribeReplicationGroups answering with the group (a wait that ends at once
    when it is 'available')."""
    stubber.add_response(
        "describe_replication_groups",
        {"ReplicationGroups": [group]},
        {"ReplicationGroupId": GROUP_ID},
    )


def expect_statuses(stubber: Stubber, *statuses: str, group: dict[str, Any] | None = None) -> None:
    """DescribeReplicationGroups answers, one per status, in order (of group_of([1]) unless
    another group is given)."""
    for status in statuses:
        expect_available(stubber, dict(group or group_of([1]), Status=status))


def expect_not_found(stubber: Stubber) -> None:
    """DescribeReplicationGroups answering that there is no such group."""
    stubber.add_client_error(
        "describe_replication_groups",
        service_error_code="ReplicationGroupNotFoundFault",
        http_status_code=404,
        expected_params={"ReplicationGroupId": GROUP_ID},
    )


def expect_member(
    stubber: Stubber, group: dict[str, Any], member: dict[str, Any] | None = None
) -> None:
    """DescribeCacheClusters of the group's first member (member_of(group) unless given)."""
    stubber.add_response(
        "describe_cache_clusters",
        {"CacheClusters": [member or member_of(group)]},
        {"CacheClusterId": group["MemberClusters"][0], "ShowCacheNodeInfo": False},
    )


def expect_read(stubber: Stubber, group: dict[str, Any], member: dict[str, Any] | None) -> None:
    """The reads ensure_present makes first: the group, then its first member."""
    expect_available(stubber, group)
    if member is not None:
        expect_member(stubber, group, member)


def existing_group(stubber: Stubber, replicas: list[int], **extra: Any) -> dict[str, Any]:
    """group_of(replicas, **extra), with ensure_present's reads of it and of its first member
    queued."""
    group = group_of(replicas, **extra)
    expect_read(stubber, group, member_of(group))
    return group


def expect_change(stubber: Stubber, operation: str, group: dict[str, Any], **request: Any) -> None:
    """One changing call (ModifyReplicationGroup, IncreaseReplicaCount, ...) whose request is
    ReplicationGroupId and exactly these parameters; AWS answers with the group."""
    stubber.add_response(
        operation, {"ReplicationGroup": group}, {"ReplicationGroupId": GROUP_ID, **request}
    )


def run_present(
    client: Any,
    stubber: Stubber,
    final: dict[str, Any] | None,
    check_mode: bool = False,
    **params: Any,
) -> erg.ReplicationGroupManager:
    """Run ensure_present; `final` is what the closing describe returns (None: no such call)."""
    if final is not None and not check_mode:
        expect_available(stubber, final)
    manager = erg.ReplicationGroupManager(FakeModule(client, check_mode, **params))
    manager.ensure_present()
    return manager


# Engine versions


@pytest.mark.parametrize(
    ("wanted", "running", "matches"),
    [
        ("7.1", "7.1.0", True),
        ("7.1.0", "7.1", True),
        ("7.1", "7.1", True),
        ("6.2", "6.2.6", True),
        ("6.x", "6.2.6", True),
        ("7", "7.1.0", True),
        ("7.1", "7.0.7", False),
        ("7.2", "7.1.0", False),
        ("7.1.1", "7.1.0", False),
        ("8.0", "7.1.0", False),
        ("7.1", None, True),
    ],
)
def test_engine_version_matches(wanted: str, running: str | None, matches: bool) -> None:
    assert plan.engine_version_matches(wanted, running) is matches


def test_engine_version_asked_short_is_no_change(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    group = group_of([1])
    expect_read(stubber, group, member_of(group, EngineVersion="7.1.0"))
    manager = run_present(client, stubber, group, engine="redis", engine_version="7.1")
    assert manager.changed is False
    assert manager.actions == []


def test_engine_version_upgrade_sends_modify(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    group = group_of([1])
    expect_read(stubber, group, member_of(group, EngineVersion="7.0.7"))
    expect_change(
        stubber, "modify_replication_group", group, EngineVersion="7.1", ApplyImmediately=True
    )
    manager = run_present(client, stubber, group, engine_version="7.1", apply_immediately=True)
    assert manager.changed is True
    assert manager.actions == ["ModifyReplicationGroup EngineVersion"]
    assert manager.before["engine_version"] == "7.0.7"
    assert manager.after["engine_version"] == "7.1"


def test_pending_engine_version_is_no_change(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    group = group_of([1])
    member = member_of(group, EngineVersion="7.0.7", PendingModifiedValues={"EngineVersion": "7.1"})
    expect_read(stubber, group, member)
    manager = run_present(client, stubber, group, engine_version="7.1")
    assert manager.changed is False


# Resizing


def test_increase_replicas_uses_increase_replica_count(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    group = existing_group(stubber, [1])
    expect_change(
        stubber, "increase_replica_count", group, NewReplicaCount=2, ApplyImmediately=True
    )
    manager = run_present(client, stubber, group, replicas_per_node_group=2)
    assert manager.actions == ["IncreaseReplicaCount NewReplicaCount=2"]
    assert manager.changed is True


def test_decrease_only_the_shards_that_have_too_many(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    group = existing_group(stubber, [2, 1, 2])
    expect_change(
        stubber,
        "decrease_replica_count",
        group,
        ReplicaConfiguration=[
            {"NodeGroupId": "0001", "NewReplicaCount": 1},
            {"NodeGroupId": "0003", "NewReplicaCount": 1},
        ],
        ApplyImmediately=True,
    )
    manager = run_present(client, stubber, group, replicas_per_node_group=1)
    assert manager.actions == ["DecreaseReplicaCount ReplicaConfiguration=0001:1,0003:1"]


def test_add_shard_then_replicas_waiting_in_between(
    stubbed: tuple[Any, Stubber], fast_wait: None
) -> None:
    client, stubber = stubbed
    group = existing_group(stubber, [1])
    expect_change(
        stubber,
        "modify_replication_group_shard_configuration",
        group,
        NodeGroupCount=2,
        ApplyImmediately=True,
    )
    # The waiter between the two operations: modifying first, then available.
    expect_statuses(stubber, "modifying", "available", group=group)
    expect_change(
        stubber, "increase_replica_count", group, NewReplicaCount=2, ApplyImmediately=True
    )
    manager = run_present(client, stubber, group, num_node_groups=2, replicas_per_node_group=2)
    assert manager.actions == [
        "ModifyReplicationGroupShardConfiguration NodeGroupCount=2",
        "IncreaseReplicaCount NewReplicaCount=2",
    ]


def test_remove_shards_keeps_the_first_ones(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    group = existing_group(stubber, [1, 1, 1])
    expect_change(
        stubber,
        "modify_replication_group_shard_configuration",
        group,
        NodeGroupCount=2,
        ApplyImmediately=True,
        NodeGroupsToRetain=["0001", "0002"],
    )
    manager = run_present(client, stubber, group, num_node_groups=2, replicas_per_node_group=1)
    assert manager.actions == ["ModifyReplicationGroupShardConfiguration NodeGroupCount=2"]


def test_same_size_is_no_change(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    group = existing_group(stubber, [1, 1])
    manager = run_present(
        client,
        stubber,
        group,
        cluster_mode="enabled",
        num_node_groups=2,
        replicas_per_node_group=1,
        automatic_failover_enabled=True,
        multi_az_enabled=True,
        transit_encryption_enabled=True,
        at_rest_encryption_enabled=True,
        cache_node_type="cache.t4g.micro",
        security_group_ids=["sg-0b"],
        preferred_maintenance_window="SUN:06:30-SUN:07:30",
        cache_subnet_group_name="cachestack-cache",
        port=6379,
        auth_token=TOKEN,
    )
    assert manager.changed is False
    assert manager.actions == []
    assert manager.before == manager.after


def test_check_mode_resize_makes_no_call(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    existing_group(stubber, [1])
    # No further response queued: any mutating call would fail the Stubber.
    manager = run_present(
        client, stubber, None, check_mode=True, num_node_groups=3, replicas_per_node_group=0
    )
    assert manager.changed is True
    assert manager.actions == [
        "ModifyReplicationGroupShardConfiguration NodeGroupCount=3",
        "DecreaseReplicaCount NewReplicaCount=0",
    ]


def test_failover_off_goes_before_the_last_replica(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    group = existing_group(stubber, [1], cluster=False, MultiAZ="disabled")
    expect_change(
        stubber,
        "modify_replication_group",
        group,
        AutomaticFailoverEnabled=False,
        ApplyImmediately=False,
    )
    expect_available(stubber, group)
    expect_change(
        stubber, "decrease_replica_count", group, NewReplicaCount=0, ApplyImmediately=True
    )
    manager = run_present(
        client, stubber, group, automatic_failover_enabled=False, replicas_per_node_group=0
    )
    assert manager.actions == [
        "ModifyReplicationGroup AutomaticFailoverEnabled",
        "DecreaseReplicaCount NewReplicaCount=0",
    ]


def test_more_shards_without_cluster_mode_is_refused(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    existing_group(stubber, [1], cluster=False)
    with pytest.raises(ModuleFailed, match="num_node_groups greater than 1 needs cluster_mode"):
        run_present(client, stubber, None, num_node_groups=2)


# Auth token


@pytest.mark.parametrize("strategy", ["SET", "ROTATE"])
def test_auth_token_update_strategy_sends_the_token(
    stubbed: tuple[Any, Stubber], strategy: str
) -> None:
    client, stubber = stubbed
    group = existing_group(stubber, [1])
    expect_change(
        stubber,
        "modify_replication_group",
        group,
        AuthToken=TOKEN,
        AuthTokenUpdateStrategy=strategy,
        ApplyImmediately=True,
    )
    manager = run_present(
        client,
        stubber,
        group,
        auth_token=TOKEN,
        auth_token_update_strategy=strategy,
        apply_immediately=True,
    )
    assert manager.changed is True
    assert manager.actions == ["ModifyReplicationGroup AuthTokenUpdateStrategy"]
    assert TOKEN not in repr(manager.actions) + repr(manager.before) + repr(manager.after)


def test_auth_token_without_strategy_is_not_resent(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    group = existing_group(stubber, [1])
    manager = run_present(client, stubber, group, auth_token=TOKEN)
    assert manager.changed is False


def test_auth_token_added_to_a_group_without_auth_rotates(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    group = existing_group(stubber, [1], AuthTokenEnabled=False)
    expect_change(
        stubber,
        "modify_replication_group",
        group,
        AuthToken=TOKEN,
        AuthTokenUpdateStrategy="ROTATE",
        ApplyImmediately=False,
    )
    manager = run_present(client, stubber, group, auth_token=TOKEN)
    assert manager.before["auth_token_enabled"] is False
    assert manager.after["auth_token_enabled"] is True


def test_auth_token_being_set_counts_as_enabled(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    group = existing_group(
        stubber, [1], AuthTokenEnabled=False, PendingModifiedValues={"AuthTokenStatus": "ROTATING"}
    )
    manager = run_present(client, stubber, group, auth_token=TOKEN)
    assert manager.changed is False


# Tags


@pytest.mark.parametrize(
    ("purge", "removed"),
    [(True, ["Old"]), (False, [])],
)
def test_tags_and_purge_tags(stubbed: tuple[Any, Stubber], purge: bool, removed: list[str]) -> None:
    client, stubber = stubbed
    group = existing_group(stubber, [1])
    stubber.add_response(
        "list_tags_for_resource",
        {
            "TagList": [
                {"Key": "Stack", "Value": "cachestack"},
                {"Key": "Old", "Value": "x"},
                {"Key": "Env", "Value": "dev"},
            ]
        },
        {"ResourceName": ARN},
    )
    if removed:
        stubber.add_response(
            "remove_tags_from_resource",
            {"TagList": []},
            {"ResourceName": ARN, "TagKeys": removed},
        )
    stubber.add_response(
        "add_tags_to_resource",
        {"TagList": []},
        {"ResourceName": ARN, "Tags": [{"Key": "Env", "Value": "prod"}]},
    )
    manager = run_present(
        client, stubber, group, tags={"Stack": "cachestack", "Env": "prod"}, purge_tags=purge
    )
    assert manager.changed is True
    assert manager.after["tags"]["Env"] == "prod"
    assert ("Old" in manager.after["tags"]) is (not purge)


def test_same_tags_is_no_change(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    group = existing_group(stubber, [1])
    stubber.add_response(
        "list_tags_for_resource",
        {"TagList": [{"Key": "Stack", "Value": "cachestack"}]},
        {"ResourceName": ARN},
    )
    manager = run_present(client, stubber, group, tags={"Stack": "cachestack"})
    assert manager.changed is False


# Create, create-only attributes, delete, results


def test_create_sends_cluster_mode_and_sizes(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_not_found(stubber)
    stubber.add_response(
        "create_replication_group",
        {"ReplicationGroup": group_of([1], Status="creating")},
        {
            "ReplicationGroupId": GROUP_ID,
            "ReplicationGroupDescription": "cache",
            "Engine": "valkey",
            "EngineVersion": "8.2",
            # Not given: AWS's default cluster-mode group of Valkey 8.
            "CacheParameterGroupName": "default.valkey8.cluster.on",
            "ClusterMode": "enabled",
            "NumNodeGroups": 1,
            "ReplicasPerNodeGroup": 1,
            "AutomaticFailoverEnabled": True,
            "TransitEncryptionEnabled": True,
            "AtRestEncryptionEnabled": True,
            "AuthToken": TOKEN,
            "Tags": [{"Key": "Stack", "Value": "cachestack"}],
        },
    )
    stubber.add_response(
        "describe_replication_groups",
        {"ReplicationGroups": [group_of([1], Status="creating")]},
        {"ReplicationGroupId": GROUP_ID},
    )
    manager = run_present(
        client,
        stubber,
        None,
        description="cache",
        engine="valkey",
        engine_version="8.2",
        cluster_mode="enabled",
        num_node_groups=1,
        replicas_per_node_group=1,
        automatic_failover_enabled=True,
        transit_encryption_enabled=True,
        at_rest_encryption_enabled=True,
        auth_token=TOKEN,
        tags={"Stack": "cachestack"},
    )
    assert manager.actions == ["CreateReplicationGroup"]
    assert manager.after["auth_token_enabled"] is True
    assert "auth_token" not in manager.after


def test_create_with_auth_but_no_tls_is_refused(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_not_found(stubber)
    with pytest.raises(ModuleFailed, match="auth_token needs transit_encryption_enabled"):
        run_present(client, stubber, None, auth_token=TOKEN)


def test_changing_encryption_at_rest_is_refused(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    existing_group(stubber, [1], AtRestEncryptionEnabled=False)
    with pytest.raises(ModuleFailed, match=r"at_rest_encryption_enabled .* cannot change"):
        run_present(client, stubber, None, at_rest_encryption_enabled=True)


def test_delete_without_wait(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    group = group_of([1])
    expect_available(stubber, group)
    expect_change(
        stubber,
        "delete_replication_group",
        dict(group, Status="deleting"),
        FinalSnapshotIdentifier="last",
    )
    expect_available(stubber, dict(group, Status="deleting"))
    manager = erg.ReplicationGroupManager(
        FakeModule(client, state="absent", final_snapshot_identifier="last")
    )
    final = manager.ensure_absent()
    assert manager.actions == ["DeleteReplicationGroup"]
    assert final["Status"] == "deleting"


def test_delete_of_a_group_being_deleted_is_no_change(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    deleting = group_of([1], Status="deleting")
    expect_available(stubber, deleting)
    expect_available(stubber, deleting)
    manager = erg.ReplicationGroupManager(FakeModule(client, state="absent"))
    manager.ensure_absent()
    assert manager.changed is False


def test_result_endpoints_without_cluster_mode(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    group = group_of([1], cluster=False)
    expect_member(stubber, group)
    stubber.add_response("list_tags_for_resource", {"TagList": []}, {"ResourceName": ANY})
    manager = erg.ReplicationGroupManager(FakeModule(client))
    result = manager.result(group)
    assert result["configuration_endpoint"] is None
    assert result["primary_endpoint"]["address"].startswith("master.")
    assert result["reader_endpoint"]["address"].startswith("replica.")
    assert result["endpoint"] == result["primary_endpoint"]
    assert result["engine_version"] == "7.1.0"
    assert result["replicas_per_node_group"] == 1


def test_result_endpoints_in_cluster_mode() -> None:
    found = plan.endpoints(group_of([1, 1]))
    assert found["configuration_endpoint"] == {
        "address": f"clustercfg.{GROUP_ID}.x.cache.amazonaws.com",
        "port": 6379,
    }
    assert found["primary_endpoint"] is None
    assert found["reader_endpoint"] is None
    assert found["endpoint"] == found["configuration_endpoint"]


def test_unreported_attributes_are_not_compared() -> None:
    # Without the member cluster (as on moto), version, groups and windows are unknown.
    current = plan.current_state(group_of([1]), None)
    request, changed = plan.plan_modify(
        {
            "engine_version": "7.2",
            "security_group_ids": ["sg-1"],
            "cache_parameter_group_name": "custom",
            "preferred_maintenance_window": "mon:01:00-mon:02:00",
            "snapshot_retention_limit": 5,
        },
        current,
        GROUP_ID,
    )
    assert changed == ["snapshot_retention_limit"]
    assert request == {
        "ReplicationGroupId": GROUP_ID,
        "SnapshotRetentionLimit": 5,
        "ApplyImmediately": False,
    }


def test_busy_group_is_planned_again_once_settled(
    stubbed: tuple[Any, Stubber], fast_wait: None
) -> None:
    # Read mid-resize (one replica listed), the group already has two when it settles:
    # no second IncreaseReplicaCount.
    client, stubber = stubbed
    busy = group_of([1], Status="modifying")
    settled = group_of([2])
    expect_read(stubber, busy, member_of(busy))
    # The waiter's read is the one planned from again (no gap for the group to change in).
    expect_read(stubber, settled, member_of(settled))
    manager = run_present(client, stubber, settled, replicas_per_node_group=2)
    assert manager.changed is False
    assert manager.actions == []


def test_group_being_deleted_without_wait_is_an_error(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_available(stubber, group_of([1], Status="deleting"))
    with pytest.raises(ModuleFailed, match="still being deleted"):
        run_present(client, stubber, None, cluster_mode="enabled")


def test_group_being_deleted_is_waited_for_then_created(
    stubbed: tuple[Any, Stubber], fast_wait: None
) -> None:
    client, stubber = stubbed
    expect_available(stubber, group_of([1], Status="deleting"))
    expect_not_found(stubber)
    stubber.add_response(
        "create_replication_group",
        {"ReplicationGroup": group_of([0], Status="creating")},
        {
            "ReplicationGroupId": GROUP_ID,
            "ReplicationGroupDescription": GROUP_ID,
            "ClusterMode": "enabled",
        },
    )
    expect_available(stubber, group_of([0]))  # the waiter after create, also the result
    manager = erg.ReplicationGroupManager(
        FakeModule(client, cluster_mode="enabled", wait=True, wait_timeout=60)
    )
    manager.ensure_present()
    assert manager.actions == ["CreateReplicationGroup"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"auth_token": "short"}, "auth_token must be 16 to 128 characters long"),
        ({"auth_token": "x" * 129}, "auth_token must be 16 to 128 characters long"),
        ({"auth_token": "has spaces and @ in it!"}, "auth_token may only hold"),
        ({"replicas_per_node_group": 6}, "replicas_per_node_group must be between 0 and 5"),
        ({"num_node_groups": 0}, "num_node_groups must be between 1 and 500"),
        (
            {"automatic_failover_enabled": True, "replicas_per_node_group": 0},
            "automatic_failover_enabled needs at least one replica",
        ),
        (
            {"multi_az_enabled": True, "automatic_failover_enabled": False},
            "multi_az_enabled needs automatic_failover_enabled=true",
        ),
        ({"auth_token_update_strategy": "SET"}, "auth_token_update_strategy needs auth_token"),
        ({"kms_key_id": "key"}, "kms_key_id needs at_rest_encryption_enabled=true"),
    ],
)
def test_validate_refuses_what_aws_would(params: dict[str, Any], message: str) -> None:
    base = {"transit_encryption_enabled": True, "cluster_mode": "enabled"}
    problems = plan.validate({**base, **params}, None)
    assert any(message in problem for problem in problems), problems
    token = params.get("auth_token")
    if token:
        assert not any(token in problem for problem in problems)


def test_validate_accepts_a_good_request() -> None:
    params = {
        "cluster_mode": "enabled",
        "num_node_groups": 2,
        "replicas_per_node_group": 1,
        "automatic_failover_enabled": True,
        "multi_az_enabled": True,
        "transit_encryption_enabled": True,
        "auth_token": TOKEN,
        "at_rest_encryption_enabled": True,
        "kms_key_id": "arn:aws:kms:us-east-1:123456789012:key/abc",
    }
    assert plan.validate(params, None) == []


def test_create_request_shape() -> None:
    request = plan.build_create_request(
        {
            "replication_group_id": GROUP_ID,
            "cluster_mode": "enabled",
            "num_node_groups": 2,
            "replicas_per_node_group": 1,
            "security_group_ids": ["sg-1"],
            "port": 6380,
        },
        {"Stack": "cachestack", "Count": 3},
    )
    assert request == {
        "ReplicationGroupId": GROUP_ID,
        "ReplicationGroupDescription": GROUP_ID,
        "SecurityGroupIds": ["sg-1"],
        "Port": 6380,
        "ClusterMode": "enabled",
        "NumNodeGroups": 2,
        "ReplicasPerNodeGroup": 1,
        "Tags": [{"Key": "Stack", "Value": "cachestack"}, {"Key": "Count", "Value": "3"}],
    }
    # The request fits the real API shape.
    client = boto3.client(
        "elasticache", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    with Stubber(client) as stubber:
        stubber.add_response("create_replication_group", {}, request)
        client.create_replication_group(**request)


def test_documentation_matches_the_argument_spec() -> None:
    documented = yaml.safe_load(erg.DOCUMENTATION)["options"]
    spec = erg.argument_spec()
    # tags and purge_tags come from the amazon.aws.tags doc fragment.
    assert set(documented) | {"tags", "purge_tags"} == set(spec)
    for name, option in documented.items():
        assert option["type"] == spec[name]["type"], name
        assert option.get("default") == spec[name].get("default"), name
        assert option.get("choices") == spec[name].get("choices"), name
    assert spec["auth_token"]["no_log"] is True
    for section in (erg.EXAMPLES, erg.RETURN):
        assert yaml.safe_load(section)


def test_engine_change_carries_its_version() -> None:
    current = plan.current_state(group_of([1]), member_of(group_of([1]), EngineVersion="7.2.4"))
    request, changed = plan.plan_modify(
        {"engine": "valkey", "engine_version": "7.2"}, current, GROUP_ID
    )
    # 7.2 matches the running 7.2.4, but a new engine needs its version in the same request.
    assert changed == ["engine"]
    assert request is not None
    assert request["Engine"] == "valkey"
    assert request["EngineVersion"] == "7.2"


def test_turning_tls_on_sends_the_mode_with_it() -> None:
    group = group_of([1], TransitEncryptionEnabled=False)
    del group["TransitEncryptionMode"]
    current = plan.current_state(group, member_of(group))
    request, changed = plan.plan_modify(
        {"transit_encryption_enabled": True, "transit_encryption_mode": "preferred"},
        current,
        GROUP_ID,
    )
    assert changed == ["transit_encryption_enabled"]
    assert request is not None
    assert request["TransitEncryptionEnabled"] is True
    assert request["TransitEncryptionMode"] == "preferred"


def test_kms_key_id_matches_its_arn_and_aliases_are_not_compared() -> None:
    arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd"
    assert plan.value_matches("kms_key_id", "1234abcd", arn)
    assert plan.value_matches("kms_key_id", "alias/cache", arn)
    assert not plan.value_matches("kms_key_id", "9999ffff", arn)


# Waiting: our own loop over DescribeReplicationGroups, on a fake clock.


class FakeClock:
    """Stands in for the module's `time`: sleeping moves the clock, nothing really sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(erg, "time", fake)
    monkeypatch.setattr(erg, "WAIT_DELAY", 15)
    return fake


def test_wait_ends_at_once_when_available(stubbed: tuple[Any, Stubber], clock: FakeClock) -> None:
    client, stubber = stubbed
    expect_statuses(stubber, "available")
    manager = erg.ReplicationGroupManager(FakeModule(client, wait_timeout=60))
    assert manager.wait_available()["Status"] == "available"
    assert clock.sleeps == []


def test_wait_polls_until_available(stubbed: tuple[Any, Stubber], clock: FakeClock) -> None:
    client, stubber = stubbed
    expect_statuses(stubber, "creating", "creating", "available")
    manager = erg.ReplicationGroupManager(FakeModule(client, wait_timeout=60))
    assert manager.wait_available()["Status"] == "available"
    assert clock.sleeps == [15, 15]


def test_wait_stops_at_once_on_create_failed(
    stubbed: tuple[Any, Stubber], clock: FakeClock
) -> None:
    client, stubber = stubbed
    expect_statuses(stubber, "creating", "create-failed")
    manager = erg.ReplicationGroupManager(FakeModule(client, wait_timeout=1800))
    with pytest.raises(ModuleFailed) as failed:
        manager.wait_available()
    assert str(failed.value) == (
        "cachestack is create-failed: AWS could not create it; delete it and run again"
    )
    # One sleep between the two polls; not the 1800 s botocore's waiter would take.
    assert clock.sleeps == [15]


def test_wait_times_out_with_the_last_status(
    stubbed: tuple[Any, Stubber], clock: FakeClock
) -> None:
    client, stubber = stubbed
    # Polls at 0, 15, 30, 45 and 60 s; a sixth would be past the 60 s timeout.
    expect_statuses(stubber, "creating", "creating", "modifying", "modifying", "snapshotting")
    manager = erg.ReplicationGroupManager(FakeModule(client, wait_timeout=60))
    with pytest.raises(ModuleFailed) as failed:
        manager.wait_available()
    assert str(failed.value) == (
        "Timed out after 60s waiting for cachestack to be available: "
        "its status is still snapshotting"
    )
    assert sum(clock.sleeps) == 60


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("deleting", "cachestack is deleting: it is being deleted and will not become available"),
        (None, "cachestack does not exist any more"),
    ],
)
def test_wait_for_available_stops_when_it_cannot_be(
    stubbed: tuple[Any, Stubber], clock: FakeClock, status: str | None, message: str
) -> None:
    client, stubber = stubbed
    if status is None:
        expect_not_found(stubber)
    else:
        expect_statuses(stubber, status)
    manager = erg.ReplicationGroupManager(FakeModule(client, wait_timeout=60))
    with pytest.raises(ModuleFailed, match=f"^{message}$"):
        manager.wait_available()
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("target", "status", "outcome"),
    [
        ("available", "available", "done"),
        ("available", "creating", "wait"),
        ("available", "modifying", "wait"),
        ("available", "snapshotting", "wait"),
        ("available", "create-failed", "fail"),
        ("available", "deleting", "fail"),
        ("available", "deleted", "fail"),
        ("available", None, "fail"),
        ("deletable", "available", "done"),
        ("deletable", "create-failed", "done"),
        ("deletable", "deleting", "done"),
        ("deletable", None, "done"),
        ("deletable", "creating", "wait"),
        ("deletable", "modifying", "wait"),
        ("deletable", "snapshotting", "wait"),
        ("gone", None, "done"),
        ("gone", "deleted", "done"),
        ("gone", "deleting", "wait"),
        ("gone", "available", "fail"),
    ],
)
def test_wait_outcome(target: str, status: str | None, outcome: str) -> None:
    group = None if status is None else group_of([1], Status=status)
    found, message = plan.wait_outcome(target, GROUP_ID, group)
    assert found == outcome
    assert bool(message) is (outcome == "fail")


# Tags only on an available group (AWS refuses the tag calls otherwise)


def expect_create(stubber: Stubber, tags: dict[str, str]) -> None:
    stubber.add_response(
        "create_replication_group",
        {"ReplicationGroup": group_of([1], Status="creating")},
        {
            "ReplicationGroupId": GROUP_ID,
            "ReplicationGroupDescription": GROUP_ID,
            "ClusterMode": "enabled",
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
        },
    )


def test_create_without_wait_returns_the_tags_asked_for(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    creating = group_of([1], Status="creating")
    expect_not_found(stubber)
    expect_create(stubber, {"Stack": "cachestack"})
    expect_available(stubber, creating)  # the closing describe
    expect_member(stubber, creating)  # result(); no ListTagsForResource is queued
    module = FakeModule(client, cluster_mode="enabled", tags={"Stack": "cachestack"})
    manager = erg.ReplicationGroupManager(module)
    result = manager.result(manager.ensure_present())
    assert result["status"] == "creating"
    assert result["tags"] == {"Stack": "cachestack"}
    assert result["replication_group"]["tags"] == {"Stack": "cachestack"}
    assert result["tags_read"] is False
    assert module.warnings == []  # the create itself set them


def test_create_and_wait_reads_the_tags_once_available(
    stubbed: tuple[Any, Stubber], clock: FakeClock
) -> None:
    client, stubber = stubbed
    available = group_of([1])
    expect_not_found(stubber)
    expect_create(stubber, {"Stack": "cachestack"})
    expect_statuses(stubber, "creating", "available")
    expect_member(stubber, available)
    stubber.add_response(
        "list_tags_for_resource",
        {"TagList": [{"Key": "Stack", "Value": "cachestack"}]},
        {"ResourceName": ARN},
    )
    module = FakeModule(client, cluster_mode="enabled", tags={"Stack": "cachestack"}, wait=True)
    manager = erg.ReplicationGroupManager(module)
    result = manager.result(manager.ensure_present())
    assert result["status"] == "available"
    assert result["tags"] == {"Stack": "cachestack"}
    assert result["tags_read"] is True


def test_create_that_fails_stops_the_wait_with_the_reason(
    stubbed: tuple[Any, Stubber], clock: FakeClock
) -> None:
    client, stubber = stubbed
    expect_not_found(stubber)
    expect_create(stubber, {"Stack": "cachestack"})
    expect_statuses(stubber, "creating", "create-failed")
    module = FakeModule(client, cluster_mode="enabled", tags={"Stack": "cachestack"}, wait=True)
    with pytest.raises(ModuleFailed, match="cachestack is create-failed: AWS could not create"):
        erg.ReplicationGroupManager(module).ensure_present()
    assert clock.sleeps == [15]


@pytest.mark.parametrize("wait", [False, True])
def test_present_on_a_create_failed_group_fails_at_once(
    stubbed: tuple[Any, Stubber], clock: FakeClock, wait: bool
) -> None:
    client, stubber = stubbed
    expect_statuses(stubber, "create-failed")
    module = FakeModule(client, tags={"Stack": "cachestack"}, wait=wait)
    with pytest.raises(ModuleFailed, match=r"^cachestack is create-failed: .*delete it and run"):
        erg.ReplicationGroupManager(module).ensure_present()
    assert clock.sleeps == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_tags_of_a_busy_group_without_wait_are_not_compared(
    stubbed: tuple[Any, Stubber], check_mode: bool
) -> None:
    client, stubber = stubbed
    creating = group_of([1], Status="creating")
    expect_read(stubber, creating, member_of(creating))
    if not check_mode:
        expect_available(stubber, creating)  # the closing describe
    expect_member(stubber, creating)  # result(); no tag call is queued
    module = FakeModule(client, check_mode, tags={"Stack": "cachestack"}, purge_tags=True)
    manager = erg.ReplicationGroupManager(module)
    result = manager.result(manager.ensure_present())
    assert result["changed"] is False
    assert result["actions"] == []
    assert result["tags"] == {"Stack": "cachestack"}
    assert result["tags_read"] is False
    assert "tags" not in result["diff"]["before"]
    assert "tags" not in result["diff"]["after"]
    assert module.warnings == [
        "The tags of cachestack were not compared because the group is creating (AWS lists "
        "and changes tags only for an available group): run again with wait=true to "
        "compare them"
    ]


def test_busy_group_without_tags_asked_returns_no_tags(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    modifying = group_of([1], Status="modifying")
    expect_read(stubber, modifying, member_of(modifying))
    expect_available(stubber, modifying)
    expect_member(stubber, modifying)
    module = FakeModule(client)
    manager = erg.ReplicationGroupManager(module)
    result = manager.result(manager.ensure_present())
    assert "tags" not in result
    assert "tags" not in result["replication_group"]
    assert result["tags_read"] is False
    assert module.warnings == []


def test_tags_of_a_busy_group_with_wait_are_compared_once_available(
    stubbed: tuple[Any, Stubber], clock: FakeClock
) -> None:
    client, stubber = stubbed
    creating = group_of([1], Status="creating")
    available = group_of([1])
    expect_read(stubber, creating, member_of(creating))
    expect_statuses(stubber, "creating", "available")  # the waiter, before any tag call
    expect_member(stubber, available)  # planned again from the settled group
    stubber.add_response("list_tags_for_resource", {"TagList": []}, {"ResourceName": ARN})
    stubber.add_response(
        "add_tags_to_resource",
        {"TagList": []},
        {"ResourceName": ARN, "Tags": [{"Key": "Stack", "Value": "cachestack"}]},
    )
    expect_statuses(stubber, "available")  # wait=true at the end
    expect_member(stubber, available)  # result(): the tags are known, not listed again
    module = FakeModule(client, tags={"Stack": "cachestack"}, wait=True)
    manager = erg.ReplicationGroupManager(module)
    result = manager.result(manager.ensure_present())
    assert result["actions"] == ["AddTagsToResource Stack"]
    assert result["tags"] == {"Stack": "cachestack"}
    assert result["tags_read"] is True
    assert result["diff"]["before"]["tags"] == {}


def test_tags_are_set_before_a_change_makes_the_group_busy(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    group = existing_group(stubber, [1])
    stubber.add_response(
        "list_tags_for_resource",
        {"TagList": [{"Key": "Stack", "Value": "old"}]},
        {"ResourceName": ARN},
    )
    stubber.add_response(
        "add_tags_to_resource",
        {"TagList": []},
        {"ResourceName": ARN, "Tags": [{"Key": "Stack", "Value": "cachestack"}]},
    )
    expect_change(
        stubber,
        "modify_replication_group",
        dict(group, Status="modifying"),
        SnapshotRetentionLimit=5,
        ApplyImmediately=False,
    )
    modifying = dict(group, Status="modifying")
    expect_available(stubber, modifying)  # the closing describe (wait=false)
    expect_member(stubber, modifying)  # result(): no ListTagsForResource on a modifying group
    module = FakeModule(client, tags={"Stack": "cachestack"}, snapshot_retention_limit=5)
    manager = erg.ReplicationGroupManager(module)
    result = manager.result(manager.ensure_present())
    assert result["actions"] == [
        "AddTagsToResource Stack",
        "ModifyReplicationGroup SnapshotRetentionLimit",
    ]
    assert result["status"] == "modifying"
    assert result["tags"] == {"Stack": "cachestack"}
    assert result["tags_read"] is True


@pytest.mark.parametrize("status", ["creating", "modifying", "snapshotting"])
def test_change_to_a_busy_group_waits_even_without_wait(
    stubbed: tuple[Any, Stubber], clock: FakeClock, status: str
) -> None:
    client, stubber = stubbed
    busy = group_of([1], Status=status)
    available = group_of([1])
    expect_read(stubber, busy, member_of(busy))
    expect_statuses(stubber, status, "available")
    expect_member(stubber, available)
    expect_change(
        stubber,
        "modify_replication_group",
        dict(available, Status="modifying"),
        SnapshotRetentionLimit=5,
        ApplyImmediately=False,
    )
    manager = run_present(
        client, stubber, dict(available, Status="modifying"), snapshot_retention_limit=5
    )
    assert manager.actions == ["ModifyReplicationGroup SnapshotRetentionLimit"]
    assert clock.sleeps == [15]


# Deleting a group that is not available


@pytest.mark.parametrize("status", ["creating", "modifying", "snapshotting"])
def test_delete_of_a_busy_group_waits_until_available(
    stubbed: tuple[Any, Stubber], clock: FakeClock, status: str
) -> None:
    client, stubber = stubbed
    expect_statuses(stubber, status)  # the first read
    expect_statuses(stubber, status, "available")  # the wait before DeleteReplicationGroup
    expect_change(stubber, "delete_replication_group", group_of([1], Status="deleting"))
    expect_statuses(stubber, "deleting")  # the closing describe (wait=false)
    manager = erg.ReplicationGroupManager(FakeModule(client, state="absent"))
    result = manager.result(manager.ensure_absent())  # no member or tag read when deleting
    assert result["actions"] == ["DeleteReplicationGroup"]
    assert result["status"] == "deleting"
    assert "tags" not in result
    assert result["tags_read"] is False
    assert clock.sleeps == [15]


def test_delete_of_a_create_failed_group_does_not_wait(
    stubbed: tuple[Any, Stubber], clock: FakeClock
) -> None:
    client, stubber = stubbed
    expect_statuses(stubber, "create-failed")
    expect_change(stubber, "delete_replication_group", group_of([1], Status="deleting"))
    expect_statuses(stubber, "deleting")
    manager = erg.ReplicationGroupManager(FakeModule(client, state="absent"))
    assert manager.ensure_absent()["Status"] == "deleting"
    assert manager.actions == ["DeleteReplicationGroup"]
    assert clock.sleeps == []


def test_delete_of_a_busy_group_someone_else_deletes(
    stubbed: tuple[Any, Stubber], clock: FakeClock
) -> None:
    client, stubber = stubbed
    expect_statuses(stubber, "modifying")
    expect_statuses(stubber, "modifying", "deleting")
    manager = erg.ReplicationGroupManager(FakeModule(client, state="absent"))
    assert manager.ensure_absent()["Status"] == "deleting"
    assert manager.actions == []
    assert manager.changed is False


def test_result_of_a_group_being_deleted_reads_no_tags(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    deleting = group_of([1], Status="deleting")
    expect_available(stubber, deleting)
    expect_available(stubber, deleting)
    manager = erg.ReplicationGroupManager(FakeModule(client, state="absent"))
    result = manager.result(manager.ensure_absent())  # nothing else queued
    assert result["changed"] is False
    assert result["status"] == "deleting"
    assert "tags" not in result
    assert result["tags_read"] is False


def test_delete_and_wait_until_gone(stubbed: tuple[Any, Stubber], clock: FakeClock) -> None:
    client, stubber = stubbed
    expect_statuses(stubber, "available")
    expect_change(stubber, "delete_replication_group", group_of([1], Status="deleting"))
    expect_statuses(stubber, "deleting", "deleting")
    expect_not_found(stubber)
    manager = erg.ReplicationGroupManager(FakeModule(client, state="absent", wait=True))
    assert manager.ensure_absent() == {}
    assert clock.sleeps == [15, 15]


def test_every_returned_key_is_documented(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    group = group_of([1])
    expect_member(stubber, group)
    stubber.add_response("list_tags_for_resource", {"TagList": []}, {"ResourceName": ARN})
    result = erg.ReplicationGroupManager(FakeModule(client)).result(group)
    documented = set(yaml.safe_load(erg.RETURN))
    assert {"tags", "tags_read"} <= set(result)
    assert set(result) - {"changed", "diff"} <= documented


# Engines: Redis OSS to Valkey in place, and what AWS refuses


def test_redis_to_valkey_is_one_modify_with_engine_version_and_group(
    stubbed: tuple[Any, Stubber],
) -> None:
    client, stubber = stubbed
    group = existing_group(stubber, [1])
    expect_change(
        stubber,
        "modify_replication_group",
        group,
        Engine="valkey",
        EngineVersion="8.2",
        CacheParameterGroupName="default.valkey8.cluster.on",
        ApplyImmediately=True,
    )
    manager = run_present(
        client,
        stubber,
        group,
        engine="valkey",
        engine_version="8.2",
        cluster_mode="enabled",
        apply_immediately=True,
    )
    assert manager.changed is True
    assert manager.actions == [
        "ModifyReplicationGroup Engine,EngineVersion,CacheParameterGroupName"
    ]
    assert (manager.before["engine"], manager.after["engine"]) == ("redis", "valkey")
    assert manager.before["cache_parameter_group_name"] == "default.redis7.cluster.on"
    assert manager.after["cache_parameter_group_name"] == "default.valkey8.cluster.on"
    assert manager.after["engine_version"] == "8.2"


def test_redis_to_valkey_in_check_mode_makes_no_call(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    group = existing_group(stubber, [1])
    manager = run_present(
        client, stubber, group, check_mode=True, engine="valkey", engine_version="8.2"
    )
    assert manager.changed is True
    assert manager.actions == [
        "ModifyReplicationGroup Engine,EngineVersion,CacheParameterGroupName"
    ]
    assert manager.after["engine"] == "valkey"


@pytest.mark.parametrize(
    ("member", "params", "says"),
    [
        (
            {"Engine": "valkey", "EngineVersion": "8.2.0"},
            {"engine": "redis", "engine_version": "7.1"},
            "cannot change Valkey back to Redis OSS",
        ),
        (
            {"Engine": "valkey", "EngineVersion": "8.2.0"},
            {"engine": "valkey", "engine_version": "8.1"},
            "engine_version=8.1 is older than the 8.2.0 the group runs",
        ),
        (
            {},
            {"engine": "valkey", "cache_parameter_group_name": "default.redis7.cluster.on"},
            "is a redis7 group, which engine=valkey cannot use",
        ),
        (
            {"CacheParameterGroup": {"CacheParameterGroupName": "cachestack-redis7"}},
            {"engine": "valkey", "engine_version": "8.2"},
            "uses its own parameter group cachestack-redis7",
        ),
    ],
    ids=["valkey-to-redis", "downgrade", "mismatched-group", "own-group-across-families"],
)
def test_engine_changes_aws_refuses_fail_before_any_change(
    stubbed: tuple[Any, Stubber], member: dict[str, Any], params: dict[str, Any], says: str
) -> None:
    client, stubber = stubbed
    group = group_of([1], Engine=member.get("Engine", "redis"))
    # Only the reads: the Stubber fails on any other call.
    expect_read(stubber, group, member_of(group, **member))
    with pytest.raises(ModuleFailed, match=says):
        run_present(client, stubber, None, **params)


def test_mismatched_group_fails_before_create(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    expect_not_found(stubber)
    with pytest.raises(ModuleFailed, match="needs family valkey8"):
        run_present(
            client,
            stubber,
            None,
            engine="valkey",
            engine_version="8.2",
            cluster_mode="enabled",
            cache_parameter_group_name="default.redis7.cluster.on",
        )


# AWS errors: one place (ReplicationGroupManager._call) turns them into fail_json_aws


def run_read(client: Any, read: str) -> Any:
    """Make one of the manager's reads of the group from group_of([1])."""
    manager = erg.ReplicationGroupManager(FakeModule(client))
    group = group_of([1])
    return {
        "describe": manager.describe,
        "describe_member": lambda: manager.describe_member(group),
        "describe_tags": lambda: manager.describe_tags(group),
    }[read]()


@pytest.mark.parametrize(
    ("read", "method", "message"),
    [
        ("describe", "describe_replication_groups", "Failed to describe replication group"),
        ("describe_member", "describe_cache_clusters", "Failed to describe cache cluster"),
        ("describe_tags", "list_tags_for_resource", "Failed to list tags of cachestack"),
    ],
)
def test_a_failed_read_fails_with_its_message(
    stubbed: tuple[Any, Stubber], read: str, method: str, message: str
) -> None:
    client, stubber = stubbed
    stubber.add_client_error(method, service_error_code="AccessDenied", http_status_code=403)
    with pytest.raises(ModuleFailed, match=f"^{message}.*: .*AccessDenied"):
        run_read(client, read)


@pytest.mark.parametrize(
    ("read", "method", "code"),
    [
        ("describe", "describe_replication_groups", "ReplicationGroupNotFoundFault"),
        ("describe_member", "describe_cache_clusters", "CacheClusterNotFound"),
    ],
)
def test_not_found_reads_as_none(
    stubbed: tuple[Any, Stubber], read: str, method: str, code: str
) -> None:
    client, stubber = stubbed
    stubber.add_client_error(method, service_error_code=code, http_status_code=404)
    assert run_read(client, read) is None


def test_not_found_is_an_error_where_it_means_nothing(stubbed: tuple[Any, Stubber]) -> None:
    """Only the describes read 'not found' as absent; the member's code means nothing to the
    group's describe, and a tag listing has no 'absent' answer."""
    client, stubber = stubbed
    stubber.add_client_error(
        "describe_replication_groups", service_error_code="CacheClusterNotFound"
    )
    with pytest.raises(ModuleFailed, match=r"^Failed to describe replication group cachestack"):
        run_read(client, "describe")
    stubber.add_client_error(
        "list_tags_for_resource", service_error_code="ReplicationGroupNotFoundFault"
    )
    with pytest.raises(ModuleFailed, match=r"^Failed to list tags of cachestack"):
        run_read(client, "describe_tags")


def test_a_failed_change_fails_naming_the_operation(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_client_error(
        "delete_replication_group",
        service_error_code="InvalidReplicationGroupState",
        expected_params={"ReplicationGroupId": GROUP_ID},
    )
    manager = erg.ReplicationGroupManager(FakeModule(client))
    with pytest.raises(
        ModuleFailed,
        match=r"^DeleteReplicationGroup failed for cachestack: .*InvalidReplicationGroupState",
    ):
        manager.call(
            "DeleteReplicationGroup", "DeleteReplicationGroup", {"ReplicationGroupId": GROUP_ID}
        )
    assert manager.actions == ["DeleteReplicationGroup"]


def test_a_botocore_error_without_a_code_fails_too() -> None:
    """Not only ClientError: a connection failure (a BotoCoreError) reaches fail_json_aws."""

    class Unreachable:
        def describe_replication_groups(self, **_kwargs: Any) -> dict[str, Any]:
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="https://x")

    manager = erg.ReplicationGroupManager(FakeModule(Unreachable()))
    with pytest.raises(
        ModuleFailed, match=r"^Failed to describe replication group cachestack: Could not connect"
    ):
        manager.describe()


def test_one_place_turns_aws_errors_into_fail_json_aws() -> None:
    source = Path(erg.__file__).read_text()
    assert source.count("fail_json_aws(") == 1
    assert source.count("botocore.exceptions.ClientError") == 1
    assert source.count("aws_retry=True") == 1
