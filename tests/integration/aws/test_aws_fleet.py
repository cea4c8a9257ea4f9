"""The web fleet on AWS (issue 24): cachestack_web_count 2 behind an Application Load
Balancer, against the stand-in (moto with ``standin_elbv2.py``'s states and refusals).

The tests run in order and share one stand-in and the stack they build:

1. A count of 0 or a non-integer is refused before anything is made, naming the variable.
2. Count 2: two instances in two zones and subnets without Elastic IPs, the load balancer
   across both public subnets with its own security group and a listener on 80, the
   target group with the readiness health check holding both, port 80 of the web security
   group from the load balancer's group only; the play prints the load balancer's name.
3. A rerun changes nothing.
4. The rolling configure's hooks (roles/aws_load_balancer tasks_from drain and enable), run
   on a web host as playbooks/configure.yml calls them: drain waits until the target has
   drained, enable until it is healthy; drain refuses to take out the last healthy target.
5. Count 2 -> 1 deregisters the surplus instance and waits out its draining before
   terminating it, and the single-instance shape returns (Elastic IP, no load balancer,
   target group, load balancer security group or second subnet, HTTP from the CIDRs).
6. Count 2 again, then the teardown leaves nothing.
7. The fleet, its hooks and its teardown as a user holding only docs/iam-policy.json's
   actions, with moto enforcing IAM.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

# controller_files and secrets_seen are autouse fixtures, active here once imported (the
# controller's files in a temporary directory, every run's output checked for secrets).
from tests.integration.aws.test_aws_playbooks import (  # noqa: F401  # pylint: disable=unused-import
    KEY_PAIR,
    STACK,
    Aws,
    Run,
    assert_account_empty,
    controller_files,
    explain,
    ingress,
    run_playbook,
    secrets_seen,
    succeeded,
    tags,
)
from tests.integration.aws.test_iam_policy import (
    POLICY,
    actions_only,
    iam_enforced,
    remember_secrets_as_root,
)
from tests.integration.aws.test_iam_policy import client as policy_client
from tests.servers.moto import aws_env

# Seconds: short, so the waits are seen in a test's time, and longer than a run's own
# overhead between two calls, so a run that does not wait is caught.
DEREGISTRATION_DELAY = 6
FLEET = {"cachestack_web_count": 2, "aws_load_balancer_deregistration_delay": DEREGISTRATION_DELAY}
SINGLE = {"cachestack_web_count": 1}
SECOND_PUBLIC = "10.0.2.0/24"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def standin_durations() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        # A registered target stays "initial" longer than enable's run takes without a
        # wait, so only a hook that waits sees it healthy.
        patch.setenv("STANDIN_TARGET_INITIAL_SECONDS", "8")
        yield


@pytest.fixture(scope="module")
def moto_url(standin_durations: None, moto_url: str) -> str:
    """conftest's server, started after ``standin_durations`` set the environment."""
    return moto_url


@pytest.fixture(scope="module")
def aws(moto_url: str) -> Aws:
    clients = Aws(moto_url)
    clients.ec2.create_key_pair(KeyName=KEY_PAIR)
    return clients


def elbv2(url: str) -> Any:
    env = aws_env(url)
    return boto3.client(
        "elbv2",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def calls(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/cachestack-standin/calls", timeout=10) as response:  # noqa: S310
        return list(json.load(response))


def provision(url: str, extra: dict[str, Any]) -> Run:
    return run_playbook(url, "playbooks/provision.yml", extra=extra)


def shown_on_web_host(run: Run) -> dict[str, Any]:
    """The msg of fleet_hooks.yml's last task, on the web host it ran on."""
    found = [
        result["msg"]
        for play in run.report.get("plays", [])
        for task in play.get("tasks", [])
        if task["task"]["name"] == "Show the host's instance and the page's URL"
        for result in task["hosts"].values()
    ]
    assert len(found) == 1, found
    return dict(found[0])


def added_host_vars(run: Run, task_name: str) -> list[dict[str, Any]]:
    """The variables an add_host task (a loop) gave each host it added, from the report."""
    return [
        item["add_host"]["host_vars"]
        for play in run.report.get("plays", [])
        for task in play.get("tasks", [])
        if task["task"]["name"] == task_name
        for result in task["hosts"].values()
        for item in result.get("results", [])
    ]


def load_balancers(url: str) -> list[dict[str, Any]]:
    return list(elbv2(url).describe_load_balancers()["LoadBalancers"])


def target_groups(url: str) -> list[dict[str, Any]]:
    return list(elbv2(url).describe_target_groups()["TargetGroups"])


def web_instances(aws: Aws) -> dict[str, dict[str, Any]]:
    """The stack's live web instances by Name."""
    return {tags(i)["Name"]: i for i in aws.live_instances() if tags(i).get("Role") == "web"}


def group_ids(aws: Aws, vpc_id: str) -> dict[str, str]:
    groups = aws.ec2.describe_security_groups(Filters=aws.vpc_filter(vpc_id))["SecurityGroups"]
    return {g["GroupName"]: g["GroupId"] for g in groups}


def target_health(url: str, group_arn: str) -> dict[str, str]:
    described = elbv2(url).describe_target_health(TargetGroupArn=group_arn)
    return {
        d["Target"]["Id"]: d["TargetHealth"]["State"] for d in described["TargetHealthDescriptions"]
    }


@pytest.mark.parametrize("count", [0, "two", 1.5])
def test_a_count_not_a_whole_number_from_1_is_refused_first(
    moto_url: str, aws: Aws, count: Any
) -> None:
    run = provision(moto_url, {"cachestack_web_count": count})
    assert run.returncode != 0, explain(run)
    said = " ".join((run.stdout + run.stderr).split())
    assert f"cachestack_web_count is {count}: it must be a whole number" in said, explain(run)
    assert "Nothing was changed" in said
    assert aws.stack_vpcs() == []
    assert aws.secrets.list_secrets()["SecretList"] == []


def test_count_two_builds_a_fleet_behind_a_load_balancer(moto_url: str, aws: Aws) -> None:
    run = provision(moto_url, FLEET)
    assert succeeded(run), explain(run)

    (vpc,) = aws.stack_vpcs()
    vpc_id = vpc["VpcId"]
    subnets = {
        s["CidrBlock"]: s
        for s in aws.ec2.describe_subnets(Filters=aws.vpc_filter(vpc_id))["Subnets"]
    }
    public = {cidr: subnets[cidr] for cidr in ("10.0.1.0/24", SECOND_PUBLIC)}
    assert {cidr: s["AvailabilityZone"] for cidr, s in public.items()} == {
        "10.0.1.0/24": "us-east-1a",
        SECOND_PUBLIC: "us-east-1b",
    }
    assert tags(public[SECOND_PUBLIC]) == {
        "Name": f"{STACK}-public-2",
        "Stack": STACK,
        "Tier": "public",
    }
    public_ids = {s["SubnetId"] for s in public.values()}
    (public_table,) = aws.ec2.describe_route_tables(
        Filters=[*aws.vpc_filter(vpc_id), {"Name": "tag:Name", "Values": [f"{STACK}-public"]}]
    )["RouteTables"]
    assert {a["SubnetId"] for a in public_table["Associations"] if a.get("SubnetId")} == public_ids

    # Two instances, one per public subnet and zone, each with the public address it was
    # launched with and no Elastic IP.
    instances = web_instances(aws)
    assert set(instances) == {f"{STACK}-web-1", f"{STACK}-web-2"}
    assert {i["SubnetId"] for i in instances.values()} == public_ids
    assert {i["Placement"]["AvailabilityZone"] for i in instances.values()} == {
        "us-east-1a",
        "us-east-1b",
    }
    assert all(i.get("PublicIpAddress") for i in instances.values()), instances
    assert {tags(i)["cachestack:web-index"] for i in instances.values()} == {"1", "2"}
    instance_ids = {i["InstanceId"] for i in instances.values()}
    (only_address,) = aws.ec2.describe_addresses()["Addresses"]
    assert tags(only_address)["Name"] == f"{STACK}-nat"

    # Port 80 of the web hosts from the load balancer's group only; the load balancer's
    # from the HTTP CIDRs.
    groups = group_ids(aws, vpc_id)
    web_group = aws.security_group(vpc_id, "web")
    alb_group = aws.security_group(vpc_id, "alb")
    assert {rule for rule in ingress(web_group) if rule[1] == 80} == {
        ("tcp", 80, 80, groups[f"{STACK}-alb"])
    }
    assert ingress(alb_group) == {("tcp", 80, 80, "0.0.0.0/0")}

    # The load balancer: internet-facing, active, across both public subnets and zones,
    # with its own group and one listener, HTTP 80, forwarding to the target group.
    (balancer,) = load_balancers(moto_url)
    assert balancer["LoadBalancerName"] == f"{STACK}-alb"
    assert balancer["Scheme"] == "internet-facing"
    assert balancer["State"]["Code"] == "active"
    assert {z["SubnetId"] for z in balancer["AvailabilityZones"]} == public_ids
    assert {z["ZoneName"] for z in balancer["AvailabilityZones"]} == {"us-east-1a", "us-east-1b"}
    assert balancer["SecurityGroups"] == [groups[f"{STACK}-alb"]]
    (group,) = target_groups(moto_url)
    (listener,) = elbv2(moto_url).describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])[
        "Listeners"
    ]
    assert (listener["Protocol"], listener["Port"]) == ("HTTP", 80)
    assert [(a["Type"], a["TargetGroupArn"]) for a in listener["DefaultActions"]] == [
        ("forward", group["TargetGroupArn"])
    ]

    # The target group: the app's readiness through nginx, both instances on port 80.
    assert group["TargetGroupName"] == f"{STACK}-web"
    assert (group["Protocol"], group["Port"], group["TargetType"], group["VpcId"]) == (
        "HTTP",
        80,
        "instance",
        vpc_id,
    )
    assert (group["HealthCheckProtocol"], group["HealthCheckPort"], group["HealthCheckPath"]) == (
        "HTTP",
        "traffic-port",
        "/healthz/ready",
    )
    assert group["Matcher"]["HttpCode"] == "200"
    attributes = {
        a["Key"]: a["Value"]
        for a in elbv2(moto_url).describe_target_group_attributes(
            TargetGroupArn=group["TargetGroupArn"]
        )["Attributes"]
    }
    assert attributes["deregistration_delay.timeout_seconds"] == str(DEREGISTRATION_DELAY)
    described = elbv2(moto_url).describe_target_health(TargetGroupArn=group["TargetGroupArn"])
    assert {
        (d["Target"]["Id"], d["Target"]["Port"]) for d in described["TargetHealthDescriptions"]
    } == {(instance_id, 80) for instance_id in instance_ids}

    # The endpoint the play prints is the load balancer's.
    (shown,) = [m for m in run.messages() if isinstance(m, list)]
    assert shown[0].startswith(f"web: http://{balancer['DNSName']}/"), shown


def test_a_rerun_of_the_fleet_changes_nothing(moto_url: str, aws: Aws) -> None:
    before = {i["InstanceId"] for i in web_instances(aws).values()}
    run = provision(moto_url, FLEET)
    assert succeeded(run), explain(run)
    assert run.changed_tasks() == [], run.changed_tasks()
    assert {i["InstanceId"] for i in web_instances(aws).values()} == before


def test_drain_and_enable_wait_for_the_load_balancer(moto_url: str, aws: Aws) -> None:
    (group,) = target_groups(moto_url)
    hooks = {"fleet_deregistration_delay": DEREGISTRATION_DELAY}

    started = time.monotonic()
    run = run_playbook(
        moto_url, "tests/integration/aws/fleet_hooks.yml", extra={**hooks, "fleet_hook": "drain"}
    )
    took = time.monotonic() - started
    assert run.returncode == 0, explain(run)
    shown = shown_on_web_host(run)
    instance = shown["instance"]
    assert shown["balancer"] == "alb"
    assert shown["url"] == f"http://{load_balancers(moto_url)[0]['DNSName']}"
    assert instance in {i["InstanceId"] for i in web_instances(aws).values()}
    # nginx on each web host believes X-Forwarded-For from the load balancer's subnets only.
    trusted = [
        host["web_nginx_real_ip_from"]
        for host in added_host_vars(run, "Tell each web host its load balancer")
    ]
    assert trusted == [["10.0.1.0/24", SECOND_PUBLIC]] * 2, trusted
    # Drained: no longer registered, and the run lasted the deregistration delay.
    assert instance not in target_health(moto_url, group["TargetGroupArn"])
    assert took >= DEREGISTRATION_DELAY, took
    assert [c["resource"] for c in calls(moto_url) if c["operation"] == "DeregisterTargets"][
        -1
    ] == instance

    run = run_playbook(
        moto_url, "tests/integration/aws/fleet_hooks.yml", extra={**hooks, "fleet_hook": "enable"}
    )
    assert run.returncode == 0, explain(run)
    # Healthy already when the run ends: it waited out the stand-in's "initial" state.
    assert target_health(moto_url, group["TargetGroupArn"])[instance] == "healthy"
    assert [c["resource"] for c in calls(moto_url) if c["operation"] == "RegisterTargets"][
        -1
    ] == instance


def test_the_drain_of_the_last_healthy_target_is_refused(moto_url: str, aws: Aws) -> None:
    """The rollout's guard (roles/aws_load_balancer tasks_from drain): with the other
    instance stopped (its target unused, Target.InvalidState), the drain of the healthy one
    fails before deregistering it, naming the other and its state; it stays healthy."""
    (group,) = target_groups(moto_url)
    instances = web_instances(aws)
    healthy, other = (instances[f"{STACK}-web-{n}"]["InstanceId"] for n in (1, 2))
    # Healthy once the stand-in's "initial" state is over (the previous test's enable waited
    # for it; run alone after the fleet's build, this does).
    deadline = time.monotonic() + 20
    while target_health(moto_url, group["TargetGroupArn"]).get(healthy) != "healthy":
        assert time.monotonic() < deadline, target_health(moto_url, group["TargetGroupArn"])
        time.sleep(0.5)
    address = instances[f"{STACK}-web-1"]["PublicIpAddress"]
    before = len(calls(moto_url))
    aws.ec2.stop_instances(InstanceIds=[other])
    try:
        # Only the running instance is a web host (web[0]); its guard waits 2 s for a peer.
        run = run_playbook(
            moto_url,
            "tests/integration/aws/fleet_hooks.yml",
            extra={
                "fleet_deregistration_delay": DEREGISTRATION_DELAY,
                "fleet_hook": "drain",
                "cachestack_ready_timeout": 2,
            },
        )
        still = target_health(moto_url, group["TargetGroupArn"])
    finally:
        aws.ec2.start_instances(InstanceIds=[other])
    assert run.returncode != 0, explain(run)
    said = " ".join(run.stdout.split())
    assert f"Not draining {address} (instance {healthy}): it is the last server" in said, said
    assert f"The others: {other}: unused (Target.InvalidState); none served within 2 s" in said
    assert f"Nothing was changed. Repair {other} first: ansible-playbook site.yml" in said
    assert still[healthy] == "healthy", still
    deregistered = [c for c in calls(moto_url)[before:] if c["operation"] == "DeregisterTargets"]
    assert deregistered == [], deregistered


def test_back_to_one_deregisters_then_terminates_and_the_single_shape_returns(
    moto_url: str, aws: Aws
) -> None:
    instances = web_instances(aws)
    first, surplus = (
        instances[f"{STACK}-web-1"]["InstanceId"],
        instances[f"{STACK}-web-2"]["InstanceId"],
    )
    (vpc,) = aws.stack_vpcs()
    alb_group = group_ids(aws, vpc["VpcId"])[f"{STACK}-alb"]
    run = provision(moto_url, SINGLE)
    assert succeeded(run), explain(run)

    log = calls(moto_url)
    (deregistered,) = [
        c for c in log if c["operation"] == "DeregisterTargets" and c["resource"] == surplus
    ]
    (terminated,) = [
        c for c in log if c["operation"] == "TerminateInstances" and c["error"] is None
    ]
    assert terminated["resource"] == surplus
    # Deregistered first, and terminated only once its draining (the delay) was over.
    assert terminated["time"] - deregistered["time"] >= DEREGISTRATION_DELAY, (
        deregistered,
        terminated,
    )
    # The load balancer's security group went once AWS let go of it: refused while the
    # deleted load balancer's interfaces lingered, and deleted after.
    deletions = [
        c["error"]
        for c in log
        if c["operation"] == "DeleteSecurityGroup" and c["resource"] == alb_group
    ]
    assert deletions[0] == "DependencyViolation" and deletions[-1] is None, deletions

    # The single instance, the first one, named as before fleets, with its Elastic IP.
    assert {name: i["InstanceId"] for name, i in web_instances(aws).items()} == {
        f"{STACK}-web": first
    }
    (address,) = aws.ec2.describe_addresses(
        Filters=[{"Name": "tag:Name", "Values": [f"{STACK}-web"]}]
    )["Addresses"]
    assert address["InstanceId"] == first
    assert load_balancers(moto_url) == []
    assert target_groups(moto_url) == []
    assert f"{STACK}-alb" not in group_ids(aws, vpc["VpcId"])
    cidrs = {
        s["CidrBlock"]
        for s in aws.ec2.describe_subnets(Filters=aws.vpc_filter(vpc["VpcId"]))["Subnets"]
    }
    assert SECOND_PUBLIC not in cidrs
    web_group = aws.security_group(vpc["VpcId"], "web")
    assert {rule for rule in ingress(web_group) if rule[1] == 80} == {("tcp", 80, 80, "0.0.0.0/0")}
    (shown,) = [m for m in run.messages() if isinstance(m, list)]
    assert shown[0].startswith(f"web: {address['PublicIp']} (instance {first})"), shown


def test_teardown_of_a_fleet_leaves_nothing(moto_url: str, aws: Aws) -> None:
    run = provision(moto_url, FLEET)
    assert succeeded(run), explain(run)
    assert len(web_instances(aws)) == 2 and len(load_balancers(moto_url)) == 1

    run = run_playbook(moto_url, "playbooks/teardown.yml")
    assert succeeded(run), explain(run)
    assert load_balancers(moto_url) == []
    assert target_groups(moto_url) == []
    assert_account_empty(aws)


@pytest.fixture(scope="module")
def deployer(moto_url: str) -> dict[str, str]:
    """Access keys of a user holding only docs/iam-policy.json's actions (as moto can
    evaluate them: test_iam_policy.py's actions_only)."""
    iam = policy_client(moto_url, "iam", aws_env(moto_url))
    iam.create_user(UserName="cachestack-fleet-deployer")
    iam.put_user_policy(
        UserName="cachestack-fleet-deployer",
        PolicyName="cachestack",
        PolicyDocument=json.dumps(actions_only(json.loads(POLICY.read_text()))),
    )
    key = iam.create_access_key(UserName="cachestack-fleet-deployer")["AccessKey"]
    return {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


def test_the_fleet_needs_only_the_policy(moto_url: str, aws: Aws, deployer: dict[str, str]) -> None:
    hooks = {"fleet_deregistration_delay": DEREGISTRATION_DELAY}
    steps = (
        ("fleet", "playbooks/provision.yml", FLEET),
        ("drain", "tests/integration/aws/fleet_hooks.yml", {**hooks, "fleet_hook": "drain"}),
        ("enable", "tests/integration/aws/fleet_hooks.yml", {**hooks, "fleet_hook": "enable"}),
        # Straight to the teardown: it deletes what going back to one would (the load
        # balancer, its target group, security group and subnet, the instances), so the
        # same actions are checked; going back to one and building the fleet again as this
        # user took another two minutes of CI for no action of their own.
        ("teardown", "playbooks/teardown.yml", FLEET),
    )
    with iam_enforced(moto_url):
        for step, playbook, extra in steps:
            run = run_playbook(
                moto_url,
                playbook,
                extra=extra,
                keys=deployer,
                learn_secrets=remember_secrets_as_root,
            )
            assert run.returncode == 0, f"{step}: {explain(run)}"
            assert "not authorized to perform" not in " ".join(run.stdout.split()), (
                f"{step}: {explain(run)}"
            )
    assert load_balancers(moto_url) == []
    assert_account_empty(aws)
