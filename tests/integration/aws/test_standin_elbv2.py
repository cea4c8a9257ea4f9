"""The moto stand-in's Elastic Load Balancing follows AWS's states and refusals
(``standin_elbv2.py``): each rule shown on conftest's module-scoped server with boto3."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.servers.moto import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, REGION

DELAY = 3  # the target group's deregistration delay, seconds
INITIAL = 2  # STANDIN_TARGET_INITIAL_SECONDS
LINGER = 3  # STANDIN_ENI_LINGER_SECONDS


@pytest.fixture(scope="module")
def durations() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STANDIN_ALB_CREATE_SECONDS", "2")
        patch.setenv("STANDIN_TARGET_INITIAL_SECONDS", str(INITIAL))
        patch.setenv("STANDIN_ENI_LINGER_SECONDS", str(LINGER))
        yield


@pytest.fixture(scope="module")
def moto_url(durations: None, moto_url: str) -> str:
    """conftest's server, started after ``durations`` set the environment."""
    return moto_url


def client(url: str, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=FAKE_ACCESS_KEY,
        aws_secret_access_key=FAKE_SECRET_KEY,
    )


@pytest.fixture(scope="module")
def network(moto_url: str) -> dict[str, Any]:
    """A VPC with a subnet in each of two zones, a security group and a running instance."""
    ec2 = client(moto_url, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for cidr, zone in (("10.9.1.0/24", "us-east-1a"), ("10.9.2.0/24", "us-east-1b"))
    ]
    group = ec2.create_security_group(GroupName="alb", Description="alb", VpcId=vpc)["GroupId"]
    image = ec2.describe_images()["Images"][0]["ImageId"]
    (instance,) = ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=subnets[0]
    )["Instances"]
    return {"vpc": vpc, "subnets": subnets, "group": group, "instance": instance["InstanceId"]}


def state(elbv2: Any, group_arn: str, instance: str) -> tuple[str, str | None]:
    (described,) = elbv2.describe_target_health(
        TargetGroupArn=group_arn, Targets=[{"Id": instance}]
    )["TargetHealthDescriptions"]
    return described["TargetHealth"]["State"], described["TargetHealth"].get("Reason")


def test_an_application_load_balancer_in_one_zone_is_refused(
    moto_url: str, network: dict[str, Any]
) -> None:
    elbv2 = client(moto_url, "elbv2")
    with pytest.raises(ClientError) as caught:
        elbv2.create_load_balancer(
            Name="one-zone", Subnets=network["subnets"][:1], SecurityGroups=[network["group"]]
        )
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "two different Availability Zones" in caught.value.response["Error"]["Message"]
    assert elbv2.describe_load_balancers()["LoadBalancers"] == []


def test_a_target_is_initial_then_healthy_and_draining_for_the_delay_then_unused(
    moto_url: str, network: dict[str, Any]
) -> None:
    elbv2 = client(moto_url, "elbv2")
    group = elbv2.create_target_group(
        Name="web", Protocol="HTTP", Port=80, VpcId=network["vpc"], TargetType="instance"
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.modify_target_group_attributes(
        TargetGroupArn=group,
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": str(DELAY)}],
    )
    instance = network["instance"]
    elbv2.register_targets(TargetGroupArn=group, Targets=[{"Id": instance, "Port": 80}])
    assert state(elbv2, group, instance) == ("initial", "Elb.RegistrationInProgress")
    time.sleep(INITIAL + 0.5)
    assert state(elbv2, group, instance)[0] == "healthy"

    deregistered = time.monotonic()
    elbv2.deregister_targets(TargetGroupArn=group, Targets=[{"Id": instance}])
    assert state(elbv2, group, instance) == ("draining", "Target.DeregistrationInProgress")
    # Listed while it drains, as AWS lists a draining target.
    listed = elbv2.describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"]
    assert [d["Target"]["Id"] for d in listed] == [instance]
    while state(elbv2, group, instance)[0] == "draining":
        assert time.monotonic() - deregistered < DELAY + 5, "still draining long after the delay"
        time.sleep(0.2)
    assert time.monotonic() - deregistered >= DELAY - 0.1
    assert state(elbv2, group, instance) == ("unused", "Target.NotRegistered")
    assert elbv2.describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"] == []


def test_a_load_balancer_is_provisioning_then_active_and_holds_its_subnets_and_group(
    moto_url: str, network: dict[str, Any]
) -> None:
    elbv2 = client(moto_url, "elbv2")
    ec2 = client(moto_url, "ec2")
    arn = elbv2.create_load_balancer(
        Name="fleet", Subnets=network["subnets"], SecurityGroups=[network["group"]]
    )["LoadBalancers"][0]["LoadBalancerArn"]
    (balancer,) = elbv2.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"]
    assert balancer["State"]["Code"] == "provisioning"
    elbv2.get_waiter("load_balancer_available").wait(
        LoadBalancerArns=[arn], WaiterConfig={"Delay": 1, "MaxAttempts": 10}
    )

    for refused in (
        lambda: ec2.delete_security_group(GroupId=network["group"]),
        lambda: ec2.delete_subnet(SubnetId=network["subnets"][1]),
    ):
        with pytest.raises(ClientError) as caught:
            refused()
        assert caught.value.response["Error"]["Code"] == "DependencyViolation"
        assert "load balancer fleet" in caught.value.response["Error"]["Message"]

    elbv2.delete_load_balancer(LoadBalancerArn=arn)
    deleted = time.monotonic()
    # Its network interfaces linger a while after it, as on AWS.
    with pytest.raises(ClientError) as caught:
        ec2.delete_security_group(GroupId=network["group"])
    assert caught.value.response["Error"]["Code"] == "DependencyViolation"
    while True:
        try:
            ec2.delete_security_group(GroupId=network["group"])
            break
        except ClientError:
            assert time.monotonic() - deleted < LINGER + 5, "still held long after the linger"
            time.sleep(0.2)
    ec2.delete_subnet(SubnetId=network["subnets"][1])

    with urllib.request.urlopen(f"{moto_url}/cachestack-standin/calls", timeout=10) as response:  # noqa: S310
        logged = [(c["operation"], c["error"]) for c in json.load(response)]
    assert ("CreateLoadBalancer", "ValidationError") in logged
    assert ("DeleteLoadBalancer", None) in logged
    assert ("DeleteSecurityGroup", "DependencyViolation") in logged
    assert ("DeregisterTargets", None) in logged
