"""The moto stand-in's AWS lifecycle (``standin_lifecycle.py``): one test per rule.

Each test shows the stand-in refusing a call with AWS's error code while a resource is in
a passing state, and the same call succeeding once the state has passed. The module has
its own server (conftest's ``moto_url`` is module-scoped), started with short states.
"""

from __future__ import annotations

import functools
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.servers.moto import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, REGION, reset_moto

# Seconds of each state for this module's server: short, and still long enough for the
# few calls a test makes inside one state (each takes milliseconds).
DURATIONS = {
    name: "1"
    for name in (
        "STANDIN_CACHE_CREATE_SECONDS",
        "STANDIN_CACHE_MODIFY_SECONDS",
        "STANDIN_CACHE_DELETE_SECONDS",
        "STANDIN_DB_CREATE_SECONDS",
        "STANDIN_DB_BACKUP_SECONDS",
        "STANDIN_DB_DELETE_SECONDS",
        "STANDIN_NAT_CREATE_SECONDS",
        "STANDIN_NAT_DELETE_SECONDS",
        "STANDIN_ENI_LINGER_SECONDS",
    )
}
WAIT = 15.0  # seconds: far beyond any state above


@pytest.fixture(scope="module")
def standin_durations() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in DURATIONS.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def moto_url(standin_durations: None, moto_url: str) -> str:
    """conftest's server, started after ``standin_durations`` set the environment."""
    return moto_url


@functools.cache  # one client per service: creating one takes longer than a call
def client(url: str, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=FAKE_ACCESS_KEY,
        aws_secret_access_key=FAKE_SECRET_KEY,
    )


def refused(code: str, call: Callable[..., Any], **params: Any) -> None:
    """Assert that ``call(**params)`` fails with AWS error ``code``."""
    with pytest.raises(ClientError) as caught:
        call(**params)
    assert caught.value.response["Error"]["Code"] == code, caught.value.response["Error"]


def accepted(call: Callable[..., Any], **params: Any) -> bool:
    """True when ``call(**params)`` succeeds; False when AWS refuses it."""
    try:
        call(**params)
    except ClientError:
        return False
    return True


def wait_for(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting after {WAIT:.0f}s for {what}")
        time.sleep(0.1)


def standin_calls(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/cachestack-standin/calls", timeout=5) as response:  # noqa: S310
        return list(json.load(response))


class Network:
    """A VPC with two subnets and a security group, in one account of the stand-in."""

    def __init__(self, url: str) -> None:
        self.ec2 = client(url, "ec2")
        self.vpc = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.subnets = [
            self.ec2.create_subnet(VpcId=self.vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"][
                "SubnetId"
            ]
            for cidr, zone in (("10.0.1.0/24", "us-east-1a"), ("10.0.2.0/24", "us-east-1b"))
        ]
        self.security_group = self.ec2.create_security_group(
            GroupName=f"standin-{self.vpc}", Description="standin", VpcId=self.vpc
        )["GroupId"]


@pytest.fixture
def network(moto_url: str) -> Network:
    return Network(moto_url)


# --- ElastiCache ---------------------------------------------------------------------


def create_group(url: str, group_id: str, network: Network | None = None) -> dict[str, Any]:
    elasticache = client(url, "elasticache")
    extra: dict[str, Any] = {}
    if network is not None:
        elasticache.create_cache_subnet_group(
            CacheSubnetGroupName=group_id,
            CacheSubnetGroupDescription="standin",
            SubnetIds=network.subnets,
        )
        extra = {"CacheSubnetGroupName": group_id, "SecurityGroupIds": [network.security_group]}
    return dict(
        elasticache.create_replication_group(
            ReplicationGroupId=group_id, ReplicationGroupDescription="standin", **extra
        )["ReplicationGroup"]
    )


def group_status(url: str, group_id: str) -> str:
    groups = client(url, "elasticache").describe_replication_groups(ReplicationGroupId=group_id)
    return str(groups["ReplicationGroups"][0]["Status"])


def test_replication_group_refuses_tag_calls_while_creating(moto_url: str) -> None:
    elasticache = client(moto_url, "elasticache")
    group = create_group(moto_url, "tags")
    assert group["Status"] == "creating"
    assert group_status(moto_url, "tags") == "creating"
    assert all(node["Status"] == "creating" for node in group["NodeGroups"])
    arn = group["ARN"]
    tag = {"Key": "stack", "Value": "standin"}
    code = "InvalidReplicationGroupState"
    refused(code, elasticache.list_tags_for_resource, ResourceName=arn)
    refused(code, elasticache.add_tags_to_resource, ResourceName=arn, Tags=[tag])
    refused(code, elasticache.remove_tags_from_resource, ResourceName=arn, TagKeys=["stack"])

    wait_for("the group to be available", lambda: group_status(moto_url, "tags") == "available")
    elasticache.add_tags_to_resource(ResourceName=arn, Tags=[tag])
    assert elasticache.list_tags_for_resource(ResourceName=arn)["TagList"] == [tag]
    elasticache.remove_tags_from_resource(ResourceName=arn, TagKeys=["stack"])


def test_replication_group_refuses_modify_while_creating_and_modifying(moto_url: str) -> None:
    elasticache = client(moto_url, "elasticache")
    create_group(moto_url, "modify")
    change = {"ReplicationGroupId": "modify", "SnapshotRetentionLimit": 2}
    refused("InvalidReplicationGroupState", elasticache.modify_replication_group, **change)

    wait_for("the group to be available", lambda: group_status(moto_url, "modify") == "available")
    modified = elasticache.modify_replication_group(**change)["ReplicationGroup"]
    assert modified["Status"] == "modifying"
    assert group_status(moto_url, "modify") == "modifying"
    refused("InvalidReplicationGroupState", elasticache.modify_replication_group, **change)

    wait_for("the change to end", lambda: group_status(moto_url, "modify") == "available")
    elasticache.modify_replication_group(**change)


def test_replication_group_refuses_snapshot_while_creating(moto_url: str) -> None:
    elasticache = client(moto_url, "elasticache")
    create_group(moto_url, "snapshot")
    snapshot = {"ReplicationGroupId": "snapshot", "SnapshotName": "snapshot-1"}
    refused("InvalidReplicationGroupState", elasticache.create_snapshot, **snapshot)

    wait_for("the group to be available", lambda: group_status(moto_url, "snapshot") == "available")
    elasticache.create_snapshot(**snapshot)


def test_replication_group_refuses_delete_until_available_then_goes(moto_url: str) -> None:
    elasticache = client(moto_url, "elasticache")
    create_group(moto_url, "delete")
    refused(
        "InvalidReplicationGroupState",
        elasticache.delete_replication_group,
        ReplicationGroupId="delete",
    )

    wait_for("the group to be available", lambda: group_status(moto_url, "delete") == "available")
    deleted = elasticache.delete_replication_group(ReplicationGroupId="delete")
    assert deleted["ReplicationGroup"]["Status"] == "deleting"
    assert group_status(moto_url, "delete") == "deleting"
    # Deleting a group already deleting is refused too (it is not available).
    refused(
        "InvalidReplicationGroupState",
        elasticache.delete_replication_group,
        ReplicationGroupId="delete",
    )

    def gone() -> bool:
        try:
            group_status(moto_url, "delete")
        except ClientError as error:
            return bool(error.response["Error"]["Code"] == "ReplicationGroupNotFoundFault")
        return False

    wait_for("the group to be gone", gone)
    assert create_group(moto_url, "delete")["Status"] == "creating"  # the id is free again


def test_cache_subnet_group_in_use_until_its_group_is_gone(moto_url: str, network: Network) -> None:
    elasticache = client(moto_url, "elasticache")
    create_group(moto_url, "subnets", network)
    wait_for("the group to be available", lambda: group_status(moto_url, "subnets") == "available")
    elasticache.delete_replication_group(ReplicationGroupId="subnets")
    refused(
        "CacheSubnetGroupInUse",
        elasticache.delete_cache_subnet_group,
        CacheSubnetGroupName="subnets",
    )

    groups = elasticache.describe_replication_groups
    wait_for("the group to be gone", lambda: "subnets" not in str(groups()["ReplicationGroups"]))
    elasticache.delete_cache_subnet_group(CacheSubnetGroupName="subnets")


def test_deleting_replication_group_holds_its_subnets_and_security_groups(
    moto_url: str, network: Network
) -> None:
    elasticache = client(moto_url, "elasticache")
    create_group(moto_url, "holder", network)
    wait_for("the group to be available", lambda: group_status(moto_url, "holder") == "available")
    elasticache.delete_replication_group(ReplicationGroupId="holder")
    assert group_status(moto_url, "holder") == "deleting"
    ec2 = network.ec2
    refused("DependencyViolation", ec2.delete_security_group, GroupId=network.security_group)
    refused("DependencyViolation", ec2.delete_subnet, SubnetId=network.subnets[0])

    groups = elasticache.describe_replication_groups
    wait_for("the group to be gone", lambda: "holder" not in str(groups()["ReplicationGroups"]))
    # Its interfaces are released a while after the group is gone.
    refused("DependencyViolation", ec2.delete_security_group, GroupId=network.security_group)
    wait_for(
        "the security group to be deleted",
        lambda: accepted(ec2.delete_security_group, GroupId=network.security_group),
    )
    ec2.delete_subnet(SubnetId=network.subnets[0])


# --- RDS -----------------------------------------------------------------------------


def create_db(url: str, db_id: str, network: Network | None = None, **extra: Any) -> Any:
    rds = client(url, "rds")
    if network is not None:
        rds.create_db_subnet_group(
            DBSubnetGroupName=db_id, DBSubnetGroupDescription="standin", SubnetIds=network.subnets
        )
        extra = {
            "DBSubnetGroupName": db_id,
            "VpcSecurityGroupIds": [network.security_group],
            **extra,
        }
    return rds.create_db_instance(
        DBInstanceIdentifier=db_id,
        DBInstanceClass="db.t4g.micro",
        Engine="postgres",
        MasterUsername="standin",
        MasterUserPassword="standin-password",
        AllocatedStorage=20,
        **extra,
    )["DBInstance"]


def describe_db(url: str, db_id: str) -> dict[str, Any]:
    instances = client(url, "rds").describe_db_instances(DBInstanceIdentifier=db_id)
    return dict(instances["DBInstances"][0])


def db_status(url: str, db_id: str) -> str:
    return str(describe_db(url, db_id)["DBInstanceStatus"])


def db_gone(url: str, db_id: str) -> Callable[[], bool]:
    def gone() -> bool:
        try:
            describe_db(url, db_id)
        except ClientError as error:
            return bool(error.response["Error"]["Code"] == "DBInstanceNotFound")
        return False

    return gone


def test_db_instance_is_creating_without_endpoint_then_backing_up_refusing_modify(
    moto_url: str,
) -> None:
    rds = client(moto_url, "rds")
    created = create_db(moto_url, "modify", BackupRetentionPeriod=1)
    assert created["DBInstanceStatus"] == "creating"
    assert "Endpoint" not in created
    assert "Endpoint" not in describe_db(moto_url, "modify")
    change = {"DBInstanceIdentifier": "modify", "BackupRetentionPeriod": 2}
    refused("InvalidDBInstanceState", rds.modify_db_instance, **change)

    wait_for("the first backup", lambda: db_status(moto_url, "modify") == "backing-up")
    assert describe_db(moto_url, "modify")["Endpoint"]["Port"] == 5432
    refused("InvalidDBInstanceState", rds.modify_db_instance, **change)

    wait_for("the instance to be available", lambda: db_status(moto_url, "modify") == "available")
    rds.modify_db_instance(**change)


def test_db_instance_without_backups_skips_backing_up(moto_url: str) -> None:
    created = create_db(moto_url, "nobackup", BackupRetentionPeriod=0)
    assert created["DBInstanceStatus"] == "creating"
    seen: set[str] = set()

    def available() -> bool:
        seen.add(db_status(moto_url, "nobackup"))
        return "available" in seen

    wait_for("the instance to be available", available)
    assert "backing-up" not in seen


def test_db_instance_delete_refused_while_creating_with_a_final_snapshot_or_deleting(
    moto_url: str,
) -> None:
    rds = client(moto_url, "rds")
    create_db(moto_url, "delete")
    with_snapshot = {"DBInstanceIdentifier": "delete", "FinalDBSnapshotIdentifier": "final"}
    refused("InvalidDBInstanceState", rds.delete_db_instance, **with_snapshot)

    wait_for("the instance to be available", lambda: db_status(moto_url, "delete") == "available")
    deleted = rds.delete_db_instance(**with_snapshot)["DBInstance"]
    assert deleted["DBInstanceStatus"] == "deleting"
    assert db_status(moto_url, "delete") == "deleting"  # moto would have forgotten it
    skip = {"DBInstanceIdentifier": "delete", "SkipFinalSnapshot": True}
    refused("InvalidDBInstanceState", rds.delete_db_instance, **skip)

    wait_for("the instance to be gone", db_gone(moto_url, "delete"))
    refused("DBInstanceNotFound", rds.delete_db_instance, **skip)


def test_db_instance_creating_can_be_deleted_without_a_final_snapshot(moto_url: str) -> None:
    rds = client(moto_url, "rds")
    create_db(moto_url, "skip")
    assert db_status(moto_url, "skip") == "creating"
    rds.delete_db_instance(DBInstanceIdentifier="skip", SkipFinalSnapshot=True)
    assert db_status(moto_url, "skip") == "deleting"
    wait_for("the instance to be gone", db_gone(moto_url, "skip"))


def test_deleting_db_instance_holds_its_subnets_security_groups_and_subnet_group(
    moto_url: str, network: Network
) -> None:
    rds = client(moto_url, "rds")
    create_db(moto_url, "holder", network)
    rds.delete_db_instance(DBInstanceIdentifier="holder", SkipFinalSnapshot=True)
    assert db_status(moto_url, "holder") == "deleting"
    ec2 = network.ec2
    refused("DependencyViolation", ec2.delete_security_group, GroupId=network.security_group)
    refused("DependencyViolation", ec2.delete_subnet, SubnetId=network.subnets[1])
    refused(
        "InvalidDBSubnetGroupStateFault", rds.delete_db_subnet_group, DBSubnetGroupName="holder"
    )

    wait_for("the instance to be gone", db_gone(moto_url, "holder"))
    rds.delete_db_subnet_group(DBSubnetGroupName="holder")
    # Its interfaces are released a while after the instance is gone.
    refused("DependencyViolation", ec2.delete_subnet, SubnetId=network.subnets[1])
    wait_for(
        "the subnet to be deleted", lambda: accepted(ec2.delete_subnet, SubnetId=network.subnets[1])
    )
    ec2.delete_security_group(GroupId=network.security_group)


# --- EC2 -----------------------------------------------------------------------------


def create_nat(network: Network) -> tuple[str, str]:
    """A public NAT gateway in the network's first subnet: (its id, its EIP allocation)."""
    allocation = network.ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = network.ec2.create_nat_gateway(SubnetId=network.subnets[0], AllocationId=allocation)
    assert nat["NatGateway"]["State"] == "pending"
    return str(nat["NatGateway"]["NatGatewayId"]), str(allocation)


def nat_state(network: Network, nat_id: str) -> str:
    gateways = network.ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"]
    return str(gateways[0]["State"])


def test_nat_gateway_is_pending_then_available_then_deleting_then_deleted(
    network: Network,
) -> None:
    nat_id, _allocation = create_nat(network)
    assert nat_state(network, nat_id) == "pending"
    wait_for("the gateway to be available", lambda: nat_state(network, nat_id) == "available")
    network.ec2.delete_nat_gateway(NatGatewayId=nat_id)
    assert nat_state(network, nat_id) == "deleting"
    network.ec2.delete_nat_gateway(NatGatewayId=nat_id)  # again: still deleting
    assert nat_state(network, nat_id) == "deleting"
    wait_for("the gateway to be deleted", lambda: nat_state(network, nat_id) == "deleted")
    network.ec2.delete_nat_gateway(NatGatewayId=nat_id)  # a deleted gateway stays deleted
    assert nat_state(network, nat_id) == "deleted"


def test_internet_gateway_detach_refused_until_the_nat_gateway_is_deleted(
    network: Network,
) -> None:
    ec2 = network.ec2
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=network.vpc)
    nat_id, _allocation = create_nat(network)
    detach = {"InternetGatewayId": igw, "VpcId": network.vpc}
    refused("DependencyViolation", ec2.detach_internet_gateway, **detach)  # pending
    wait_for("the gateway to be available", lambda: nat_state(network, nat_id) == "available")
    refused("DependencyViolation", ec2.detach_internet_gateway, **detach)
    ec2.delete_nat_gateway(NatGatewayId=nat_id)
    refused("DependencyViolation", ec2.detach_internet_gateway, **detach)  # deleting

    wait_for("the gateway to be deleted", lambda: nat_state(network, nat_id) == "deleted")
    ec2.detach_internet_gateway(**detach)


def test_deleting_nat_gateway_holds_its_subnet(network: Network) -> None:
    ec2 = network.ec2
    nat_id, _allocation = create_nat(network)
    wait_for("the gateway to be available", lambda: nat_state(network, nat_id) == "available")
    ec2.delete_nat_gateway(NatGatewayId=nat_id)
    refused("DependencyViolation", ec2.delete_subnet, SubnetId=network.subnets[0])
    ec2.delete_subnet(SubnetId=network.subnets[1])  # nothing in the other one

    wait_for("the gateway to be deleted", lambda: nat_state(network, nat_id) == "deleted")
    ec2.delete_subnet(SubnetId=network.subnets[0])


def test_elastic_ip_of_a_nat_gateway_cannot_be_released_until_it_is_deleted(
    network: Network,
) -> None:
    ec2 = network.ec2
    nat_id, allocation = create_nat(network)
    refused("InvalidIPAddress.InUse", ec2.release_address, AllocationId=allocation)
    wait_for("the gateway to be available", lambda: nat_state(network, nat_id) == "available")
    ec2.delete_nat_gateway(NatGatewayId=nat_id)
    refused("InvalidIPAddress.InUse", ec2.release_address, AllocationId=allocation)

    wait_for("the gateway to be deleted", lambda: nat_state(network, nat_id) == "deleted")
    address = ec2.describe_addresses(AllocationIds=[allocation])["Addresses"][0]
    assert "AssociationId" not in address  # deleting the gateway freed it
    ec2.release_address(AllocationId=allocation)


# --- The call log --------------------------------------------------------------------


def test_call_log_lists_refused_and_accepted_calls_and_reset_empties_it(moto_url: str) -> None:
    reset_moto(moto_url)
    assert standin_calls(moto_url) == []
    elasticache = client(moto_url, "elasticache")
    create_group(moto_url, "logged")
    change = {"ReplicationGroupId": "logged", "SnapshotRetentionLimit": 1}
    refused("InvalidReplicationGroupState", elasticache.modify_replication_group, **change)
    wait_for("the group to be available", lambda: group_status(moto_url, "logged") == "available")
    elasticache.modify_replication_group(**change)
    elasticache.describe_replication_groups()  # not a lifecycle call: not logged

    calls = standin_calls(moto_url)
    assert [(c["service"], c["operation"], c["resource"], c["error"]) for c in calls] == [
        ("elasticache", "CreateReplicationGroup", "logged", None),
        ("elasticache", "ModifyReplicationGroup", "logged", "InvalidReplicationGroupState"),
        ("elasticache", "ModifyReplicationGroup", "logged", None),
    ]
    times = [c["time"] for c in calls]
    assert times == sorted(times) and abs(times[-1] - time.time()) < 60

    reset_moto(moto_url)
    assert standin_calls(moto_url) == []
