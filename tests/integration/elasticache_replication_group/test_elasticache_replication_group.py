"""cachestack.aws.elasticache_replication_group against moto, through ansible-playbook.

The amazon.aws test pattern: check mode (changed, nothing made), apply (changed), check
again and apply again (no change), change one attribute (only that changes), delete. moto
leaves a deleted group `deleting` for ever, so the delete runs with wait=false.

The engine tests run against the AWS stand-in (tests/integration/aws/moto_compat.py), which
changes a group's engine, version and parameter group as AWS does and logs its calls.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

from .conftest import PlayRun, Step

GROUP_ID = "cachestack-test"
TOKEN = "integration-auth-token-0123456789"

GROUP_ARGS: dict[str, Any] = {
    "replication_group_id": GROUP_ID,
    "description": "cachestack cache",
    "engine": "redis",
    "engine_version": "7.1",
    "cache_node_type": "cache.t4g.micro",
    "cluster_mode": "enabled",
    "num_node_groups": 1,
    "replicas_per_node_group": 1,
    "automatic_failover_enabled": True,
    "transit_encryption_enabled": True,
    "auth_token": TOKEN,
    "at_rest_encryption_enabled": True,
    "snapshot_retention_limit": 1,
    "tags": {"Stack": "cachestack", "Role": "cache"},
}


def describe(client: Any) -> dict[str, Any] | None:
    try:
        return dict(
            client.describe_replication_groups(ReplicationGroupId=GROUP_ID)["ReplicationGroups"][0]
        )
    except client.exceptions.ReplicationGroupNotFoundFault:
        return None


def tags_of(client: Any, group: dict[str, Any]) -> dict[str, str]:
    tag_list = client.list_tags_for_resource(ResourceName=group["ARN"])["TagList"]
    return {tag["Key"]: tag["Value"] for tag in tag_list}


def ok(run: PlayRun) -> list[dict[str, Any]]:
    """Assert the play succeeded without leaking the token; return the task results."""
    assert run.rc == 0, f"{run.results}\n{run.stderr[-2000:]}"
    for result in run.results:
        assert not result.get("failed"), result
    assert TOKEN not in run.stdout + run.stderr, "the auth token leaked into the output"
    return run.results


def changed_keys(result: dict[str, Any]) -> set[str]:
    before, after = result["diff"]["before"], result["diff"]["after"]
    return {key for key in set(before) | set(after) if before.get(key) != after.get(key)}


def test_lifecycle(run_play: Callable[..., PlayRun], elasticache: Any) -> None:
    # Check mode on an empty account: a change is reported, nothing is created.
    [planned] = ok(run_play(Step(GROUP_ARGS, check=True)))
    assert planned["changed"]
    assert planned["actions"] == ["CreateReplicationGroup"]
    assert planned["diff"]["before"] == {}
    assert planned["diff"]["after"]["cluster_mode"] == "enabled"
    assert planned["diff"]["after"]["auth_token_enabled"] is True
    assert describe(elasticache) is None

    # Apply, then check mode and apply again: created once, then nothing to do.
    created, checked, again = ok(
        run_play(Step(GROUP_ARGS), Step(GROUP_ARGS, check=True), Step(GROUP_ARGS))
    )
    assert created["changed"]
    assert created["actions"] == ["CreateReplicationGroup"]
    for rerun in (checked, again):
        assert not rerun["changed"], rerun["actions"]
        assert rerun["actions"] == []
        assert changed_keys(rerun) == set()

    group = describe(elasticache)
    assert group is not None
    assert group["ClusterMode"] == "enabled"
    assert group["ClusterEnabled"] is True
    assert len(group["NodeGroups"]) == 1
    assert len(group["NodeGroups"][0]["NodeGroupMembers"]) == 2  # primary and one replica
    assert group["AutomaticFailover"] == "enabled"
    assert group["TransitEncryptionEnabled"] is True
    assert group["AuthTokenEnabled"] is True
    assert group["AtRestEncryptionEnabled"] is True
    assert group["SnapshotRetentionLimit"] == 1
    assert tags_of(elasticache, group) == GROUP_ARGS["tags"]

    # The return values: snake_case, with the configuration endpoint in cluster mode.
    assert created["replication_group_id"] == GROUP_ID
    assert created["status"] == "available"
    assert created["cluster_enabled"] is True
    assert created["num_node_groups"] == 1
    assert created["replicas_per_node_group"] == 1
    assert created["configuration_endpoint"] == {
        "address": group["ConfigurationEndpoint"]["Address"],
        "port": group["ConfigurationEndpoint"]["Port"],
    }
    assert created["endpoint"] == created["configuration_endpoint"]
    assert created["primary_endpoint"] is None
    assert created["reader_endpoint"] is None
    assert created["replication_group"]["member_clusters"] == group["MemberClusters"]
    assert created["tags"] == GROUP_ARGS["tags"]
    assert created["tags_read"] is True  # read from AWS once the group is available
    assert again["configuration_endpoint"] == created["configuration_endpoint"]

    # One attribute changed: check mode reports only it and changes nothing ...
    changed_args = dict(GROUP_ARGS, snapshot_retention_limit=5)
    [planned] = ok(run_play(Step(changed_args, check=True)))
    assert planned["changed"]
    assert planned["actions"] == ["ModifyReplicationGroup SnapshotRetentionLimit"]
    assert changed_keys(planned) == {"snapshot_retention_limit"}
    assert describe(elasticache) == group

    # ... apply changes only that, and once applied it is no change; a delete in check
    # mode reports a change and deletes nothing.
    absent = {"replication_group_id": GROUP_ID, "state": "absent", "wait": False}
    modified, settled, delete_planned = ok(
        run_play(Step(changed_args), Step(changed_args), Step(absent, check=True))
    )
    assert modified["changed"]
    assert modified["actions"] == ["ModifyReplicationGroup SnapshotRetentionLimit"]
    assert not settled["changed"]
    assert delete_planned["changed"]
    assert delete_planned["actions"] == ["DeleteReplicationGroup"]
    now = describe(elasticache)
    assert now is not None
    assert now["SnapshotRetentionLimit"] == 5
    assert now["Status"] == "available"
    assert {k: v for k, v in now.items() if k != "SnapshotRetentionLimit"} == {
        k: v for k, v in group.items() if k != "SnapshotRetentionLimit"
    }
    assert tags_of(elasticache, now) == GROUP_ARGS["tags"]

    # Delete without waiting (moto never finishes deleting); a second delete is no change.
    deleted, deleted_again = ok(run_play(Step(absent), Step(absent)))
    assert deleted["changed"]
    assert deleted["actions"] == ["DeleteReplicationGroup"]
    assert not deleted_again["changed"]
    # AWS lists no tags of a group being deleted: none are read or returned.
    for result in (deleted, deleted_again):
        assert result["status"] == "deleting"
        assert result["tags_read"] is False
        assert "tags" not in result
        assert "tags" not in result["replication_group"]
    gone = describe(elasticache)
    assert gone is not None
    assert gone["Status"] == "deleting"


def test_tags_without_cluster_mode(run_play: Callable[..., PlayRun], elasticache: Any) -> None:
    args = {
        "replication_group_id": GROUP_ID,
        "cluster_mode": "disabled",
        "replicas_per_node_group": 1,
        "tags": {"Stack": "cachestack", "Old": "yes"},
    }
    created, kept, purged, untouched = ok(
        run_play(
            Step(args),
            Step(dict(args, tags={"New": "1"}, purge_tags=False)),
            Step(dict(args, tags={"Stack": "cachestack"})),
            Step({"replication_group_id": GROUP_ID}),
        )
    )
    assert created["tags"] == {"Stack": "cachestack", "Old": "yes"}
    # Without cluster mode: a primary endpoint, no configuration endpoint (moto reports no
    # reader endpoint, and the module returns null for what is not reported).
    group = describe(elasticache)
    assert group is not None
    assert group["ClusterEnabled"] is False
    assert len(group["NodeGroups"][0]["NodeGroupMembers"]) == 2
    assert created["cluster_mode"] == "disabled"
    assert created["configuration_endpoint"] is None
    assert created["primary_endpoint"] == {
        "address": group["NodeGroups"][0]["PrimaryEndpoint"]["Address"],
        "port": group["NodeGroups"][0]["PrimaryEndpoint"]["Port"],
    }
    assert created["endpoint"] == created["primary_endpoint"]
    assert created["reader_endpoint"] is None
    assert kept["changed"]
    assert kept["tags"] == {"Stack": "cachestack", "Old": "yes", "New": "1"}
    assert purged["changed"]
    assert purged["actions"] == ["RemoveTagsFromResource New,Old"]
    assert purged["diff"]["after"]["tags"] == {"Stack": "cachestack"}
    # Without tags, tags are left alone.
    assert not untouched["changed"]
    assert tags_of(elasticache, group) == {"Stack": "cachestack"}


def test_bad_input_fails_before_anything_is_made(
    run_play: Callable[..., PlayRun], elasticache: Any
) -> None:
    no_tls, one_shard = run_play(
        Step({"replication_group_id": GROUP_ID, "auth_token": TOKEN}, ignore_errors=True),
        Step({"replication_group_id": GROUP_ID, "num_node_groups": 2}, ignore_errors=True),
    ).results
    assert no_tls["failed"]
    assert "auth_token needs transit_encryption_enabled=true" in no_tls["msg"]
    assert one_shard["failed"]
    assert "num_node_groups greater than 1 needs cluster_mode=enabled" in one_shard["msg"]
    assert TOKEN not in repr(no_tls)
    assert describe(elasticache) is None


# Engines, against the AWS stand-in (moto alone ignores a new version and parameter group).

UPGRADE_ACTION = "ModifyReplicationGroup Engine,EngineVersion,CacheParameterGroupName"


def members_engine(client: Any, group: dict[str, Any]) -> set[tuple[str, str, str]]:
    found = set()
    for member_id in group["MemberClusters"]:
        (member,) = client.describe_cache_clusters(CacheClusterId=member_id)["CacheClusters"]
        found.add(
            (
                member["Engine"],
                member["EngineVersion"],
                member["CacheParameterGroup"]["CacheParameterGroupName"],
            )
        )
    return found


def logged_calls(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/cachestack-standin/calls", timeout=10) as response:  # noqa: S310
        return [call for call in json.load(response) if call["resource"] == GROUP_ID]


def test_redis_to_valkey_in_place_then_back_is_refused(
    run_standin_play: Callable[..., PlayRun], standin_elasticache: Any, standin: str
) -> None:
    client = standin_elasticache
    redis = dict(GROUP_ARGS)  # Redis OSS 7.1, cluster mode, no parameter group given
    valkey = dict(GROUP_ARGS, engine="valkey", engine_version="8.2", apply_immediately=True)

    created, again = ok(run_standin_play(Step(redis), Step(redis)))
    assert created["changed"] and not again["changed"], again["actions"]
    before = describe(client)
    assert before is not None
    # The default group of Redis OSS 7 in cluster mode was filled in.
    assert members_engine(client, before) == {("redis", "7.1.0", "default.redis7.cluster.on")}

    # Check mode shows the upgrade and calls nothing.
    [planned] = ok(run_standin_play(Step(valkey, check=True)))
    assert planned["changed"]
    assert planned["actions"] == [UPGRADE_ACTION]
    assert changed_keys(planned) == {"engine", "engine_version", "cache_parameter_group_name"}
    assert planned["diff"]["before"]["engine"] == "redis"
    assert planned["diff"]["after"]["cache_parameter_group_name"] == "default.valkey8.cluster.on"
    assert describe(client) == before

    # Applied: one ModifyReplicationGroup, the same group and endpoint, Valkey after.
    upgraded, settled = ok(run_standin_play(Step(valkey), Step(valkey)))
    assert upgraded["changed"]
    assert upgraded["actions"] == [UPGRADE_ACTION]
    assert upgraded["engine"] == "valkey"
    assert upgraded["engine_version"] == "8.2.0"
    assert upgraded["configuration_endpoint"] == created["configuration_endpoint"]
    assert not settled["changed"], settled["actions"]
    after = describe(client)
    assert after is not None
    assert after["Engine"] == "valkey"
    assert after["ARN"] == before["ARN"]
    assert after["ConfigurationEndpoint"] == before["ConfigurationEndpoint"]
    assert members_engine(client, after) == {("valkey", "8.2.0", "default.valkey8.cluster.on")}
    modifies = [c for c in logged_calls(standin) if c["operation"] == "ModifyReplicationGroup"]
    assert [c["error"] for c in modifies] == [None]
    assert not [c for c in logged_calls(standin) if c["operation"] == "DeleteReplicationGroup"]

    # Back to Redis OSS, and a downgrade: refused by the module before any call.
    back, older = run_standin_play(
        Step(redis, ignore_errors=True),
        Step(dict(valkey, engine_version="8.1"), ignore_errors=True),
    ).results
    assert back["failed"]
    assert "cannot change Valkey back to Redis OSS" in back["msg"]
    assert older["failed"]
    assert "engine_version=8.1 is older than the 8.2.0 the group runs" in older["msg"]
    assert (
        len([c for c in logged_calls(standin) if c["operation"] == "ModifyReplicationGroup"]) == 1
    )
    assert members_engine(client, describe(client) or {}) == {
        ("valkey", "8.2.0", "default.valkey8.cluster.on")
    }


def test_a_mismatched_parameter_group_fails_before_the_create(
    run_standin_play: Callable[..., PlayRun], standin_elasticache: Any, standin: str
) -> None:
    mismatched = dict(
        GROUP_ARGS,
        engine="valkey",
        engine_version="8.2",
        cache_parameter_group_name="default.redis7.cluster.on",
    )
    [refused] = run_standin_play(Step(mismatched, ignore_errors=True)).results
    assert refused["failed"]
    assert "needs family valkey8: use default.valkey8.cluster.on" in refused["msg"]
    assert describe(standin_elasticache) is None
    assert logged_calls(standin) == []


def members_settings(client: Any, group: dict[str, Any]) -> set[tuple[str, tuple[str, ...]]]:
    """(maintenance window, security group ids) of every member cache cluster."""
    found = set()
    for member_id in group["MemberClusters"]:
        (member,) = client.describe_cache_clusters(CacheClusterId=member_id)["CacheClusters"]
        found.add(
            (
                member["PreferredMaintenanceWindow"],
                tuple(sorted(sg["SecurityGroupId"] for sg in member["SecurityGroups"])),
            )
        )
    return found


def test_member_cluster_drift_is_reported_and_corrected(
    run_standin_play: Callable[..., PlayRun], standin_elasticache: Any, standin: str
) -> None:
    # The maintenance window and the security groups are read from a member cache cluster
    # (DescribeCacheClusters), not from the group: a change made by hand is found there.
    client = standin_elasticache
    wanted = dict(
        GROUP_ARGS,
        preferred_maintenance_window="sun:05:00-sun:06:00",
        security_group_ids=["sg-0aaaaaaaaaaaaaaaa"],
    )
    created, again = ok(run_standin_play(Step(wanted), Step(wanted)))
    assert created["changed"] and not again["changed"], again["actions"]
    assert again["diff"]["before"].get("preferred_maintenance_window") == "sun:05:00-sun:06:00"
    assert again["diff"]["before"].get("security_group_ids") == ["sg-0aaaaaaaaaaaaaaaa"]
    group = describe(client)
    assert group is not None and len(group["MemberClusters"]) == 2
    assert "PreferredMaintenanceWindow" not in group  # the group does not report them
    assert "SecurityGroups" not in group
    assert members_settings(client, group) == {("sun:05:00-sun:06:00", ("sg-0aaaaaaaaaaaaaaaa",))}

    # Changed by hand, outside the module.
    client.modify_replication_group(
        ReplicationGroupId=GROUP_ID,
        PreferredMaintenanceWindow="mon:03:00-mon:04:00",
        SecurityGroupIds=["sg-0bbbbbbbbbbbbbbbb"],
        ApplyImmediately=True,
    )
    drifted = {("mon:03:00-mon:04:00", ("sg-0bbbbbbbbbbbbbbbb",))}
    assert members_settings(client, describe(client) or {}) == drifted
    calls_before = len(logged_calls(standin))

    # Check mode reports the drift of exactly those two, read from the member, and calls
    # nothing that changes the group.
    [planned] = ok(run_standin_play(Step(wanted, check=True)))
    assert planned["changed"]
    assert changed_keys(planned) == {"preferred_maintenance_window", "security_group_ids"}
    assert planned["diff"]["before"]["preferred_maintenance_window"] == "mon:03:00-mon:04:00"
    assert planned["diff"]["before"]["security_group_ids"] == ["sg-0bbbbbbbbbbbbbbbb"]
    assert planned["diff"]["after"]["preferred_maintenance_window"] == "sun:05:00-sun:06:00"
    assert planned["diff"]["after"]["security_group_ids"] == ["sg-0aaaaaaaaaaaaaaaa"]
    assert [a for a in planned["actions"] if a.startswith("ModifyReplicationGroup")], planned
    assert members_settings(client, describe(client) or {}) == drifted
    assert not [
        c for c in logged_calls(standin)[calls_before:] if c["operation"].startswith("Modify")
    ]

    # Applied: the members have the wanted values again, and a rerun has nothing to do.
    corrected, settled = ok(run_standin_play(Step(wanted), Step(wanted)))
    assert corrected["changed"]
    assert corrected["actions"] == planned["actions"]
    assert not settled["changed"], settled["actions"]
    assert members_settings(client, describe(client) or {}) == {
        ("sun:05:00-sun:06:00", ("sg-0aaaaaaaaaaaaaaaa",))
    }
