"""The AWS layer end to end against moto: preflight, check, apply, rerun, change, teardown.

The tests run in order and share one moto server (and the stack they build in it):

1. ``site.yml -i inventory/aws`` with no SSH CIDR stops before provisioning, naming the
   variable to set.
2. ``provision.yml --check`` on an empty account runs to the end and creates nothing.
3. Applied, it builds what issue 6 lists: asserted resource by resource through boto3.
4. Check mode again and a second apply report changed=0 (the second apply also shows the
   endpoints contract set on the web host).
5. Changing one security-group CIDR and the cache's snapshot retention changes only those.
   A change AWS refuses stops with AWS's reason, though the tasks are no_log. Secrets
   changed by hand in Secrets Manager reach RDS and ElastiCache (the plan shows it).
6. Teardown leaves nothing of the stack; a second teardown changes nothing; provisioning
   again right after works.

Every run goes through run_playbook, which fails it if any secret known before or after it
(Secrets Manager's values, the web hosts' private host keys, what a test made) appears in
Ansible's output.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_hex
from typing import Any

import boto3
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.aws.standin_catalogue import DEBIAN, NEWEST_DEBIAN_13_AMD64
from tests.servers.moto import aws_env

REPO = Path(__file__).resolve().parents[3]
ANSIBLE_BIN = Path(sys.executable).parent
STACK = "cachestack"
SSH_CIDR = "198.51.100.0/24"
NEW_SSH_CIDR = "203.0.113.0/24"
# An EC2 key pair made in moto before the tests, as a user would import theirs.
KEY_PAIR = "cachestack-tests"
# The images are the stand-in's catalogue (standin_catalogue.py): the official Debian and
# Ubuntu ones under their owners, with newer arm64, backports, Debian 12 and Ubuntu images
# that the web instance must not get.
LOGIN_USER_TAG = "cachestack:login-user"
BASE_VARS: dict[str, Any] = {
    "cachestack_ssh_cidrs": [SSH_CIDR],
    "aws_web_instance_key_name": KEY_PAIR,
    # moto never finishes deleting a replication group: do not wait for it.
    "aws_cache_wait_for_delete": False,
    "confirm_teardown": STACK,
    # The stand-in's states last seconds, not minutes: look again every second.
    "aws_database_poll_interval": 1,
    "aws_network_retry_interval": 1,
    "aws_secrets_retry_interval": 2,
}
PLAYBOOK_TIMEOUT = 600
HOST_KEY_TAG = "cachestack:ssh-host-key"
# What test_changing_one_input_changes_only_that changes; the runs after it keep them.
CHANGED_INPUTS: dict[str, Any] = {
    "cachestack_ssh_cidrs": [NEW_SSH_CIDR],
    "aws_cache_snapshot_retention_limit": 3,
    # A resize: ModifyReplicationGroup scales the nodes, and the group is modifying meanwhile.
    "aws_cache_node_type": "cache.t3.small",
}

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@dataclass
class Run:
    """One ansible-playbook run, parsed from the ansible.posix.json callback."""

    returncode: int
    stdout: str
    stderr: str
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.report.get("stats", {}).get("localhost", {}))

    def changed_tasks(self) -> list[str]:
        """Names of the tasks that reported a change on the controller."""
        names = []
        for play in self.report.get("plays", []):
            for task in play.get("tasks", []):
                result = task.get("hosts", {}).get("localhost", {})
                if result.get("changed"):
                    names.append(task["task"]["name"])
        return names

    def messages(self) -> list[Any]:
        """The msg of every debug task on the controller."""
        found = []
        for play in self.report.get("plays", []):
            for task in play.get("tasks", []):
                result = task.get("hosts", {}).get("localhost", {})
                if "msg" in result and task["task"]["name"].startswith("Show"):
                    found.append(result["msg"])
        return found


# Every secret value seen so far in this module's runs: what Secrets Manager held and the
# web hosts' private SSH host keys (in their user data) before and after each run, and what
# a test adds itself. Every run's output is checked against all of them (run_playbook).
SECRETS: list[str] = []


def run_playbook(
    url: str,
    playbook: str,
    *,
    check: bool = False,
    extra: dict[str, Any] | None = None,
    keys: dict[str, str] | None = None,
    learn_secrets: Callable[[str], None] | None = None,
) -> Run:
    """Run a playbook (the only way this module runs one) and fail if its output holds any
    secret known before or after it ran (read with ``learn_secrets``, by default
    remember_secrets with moto's root credentials)."""
    learn = learn_secrets or remember_secrets
    learn(url)
    run = _ansible_playbook(url, playbook, check=check, extra=extra, keys=keys)
    learn(url)
    assert_no_secret(run, SECRETS)
    return run


def remember_secrets(url: str) -> None:
    aws = Aws(url)
    found = aws.secret_values()
    for instance in aws.live_instances():
        private = user_data(aws, instance["InstanceId"]).get("ssh_keys", {}).get("ed25519_private")
        if private:
            found += private.strip().splitlines()[1:-1]
    SECRETS.extend(value for value in found if value not in SECRETS)


def _ansible_playbook(
    url: str,
    playbook: str,
    *,
    check: bool = False,
    extra: dict[str, Any] | None = None,
    keys: dict[str, str] | None = None,
) -> Run:
    """Run a playbook from the repository root against moto with the AWS inventory (signed
    with ``keys``, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, instead of moto's root)."""
    variables = {**BASE_VARS, "aws_endpoint_url": url, **(extra or {})}
    command = [
        str(ANSIBLE_BIN / "ansible-playbook"),
        playbook,
        "-i",
        "inventory/aws",
        "-e",
        json.dumps(variables),
    ]
    if check:
        command += ["--check", "--diff"]
    env = {**aws_env(url), **(keys or {})}
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    env["ANSIBLE_DEPRECATION_WARNINGS"] = "false"
    completed = subprocess.run(
        command,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=PLAYBOOK_TIMEOUT,
        check=False,
    )
    run = Run(completed.returncode, completed.stdout, completed.stderr)
    start = completed.stdout.find("{")
    if start >= 0:
        with contextlib.suppress(json.JSONDecodeError):
            run.report = json.loads(completed.stdout[start:])
    return run


def succeeded(run: Run) -> bool:
    return run.returncode == 0 and run.stats.get("failures", 1) == 0


def explain(run: Run) -> str:
    return f"rc={run.returncode}\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"


class Aws:
    """boto3 clients for the moto server."""

    def __init__(self, url: str) -> None:
        env = aws_env(url)
        kwargs = {
            "endpoint_url": url,
            "region_name": "us-east-1",
            "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        }
        self.ec2 = boto3.client("ec2", **kwargs)
        self.rds = boto3.client("rds", **kwargs)
        self.elasticache = boto3.client("elasticache", **kwargs)
        self.secrets = boto3.client("secretsmanager", **kwargs)

    def stack_vpcs(self) -> list[dict[str, Any]]:
        return self.ec2.describe_vpcs(Filters=[{"Name": "tag:Stack", "Values": [STACK]}])["Vpcs"]

    def vpc_filter(self, vpc_id: str) -> list[dict[str, Any]]:
        return [{"Name": "vpc-id", "Values": [vpc_id]}]

    def security_group(self, vpc_id: str, name: str) -> dict[str, Any]:
        groups = self.ec2.describe_security_groups(
            Filters=[
                *self.vpc_filter(vpc_id),
                {"Name": "group-name", "Values": [f"{STACK}-{name}"]},
            ]
        )["SecurityGroups"]
        assert len(groups) == 1, groups
        return groups[0]

    def secret_values(self) -> list[str]:
        values = []
        for secret in self.secrets.list_secrets()["SecretList"]:
            values.append(self.secrets.get_secret_value(SecretId=secret["ARN"])["SecretString"])
        return values

    def live_replication_groups(self) -> list[dict[str, Any]]:
        groups = self.elasticache.describe_replication_groups()["ReplicationGroups"]
        return [group for group in groups if group["Status"] != "deleting"]

    def live_instances(self) -> list[dict[str, Any]]:
        reservations = self.ec2.describe_instances(
            Filters=[{"Name": "tag:Stack", "Values": [STACK]}]
        )["Reservations"]
        return [
            instance
            for reservation in reservations
            for instance in reservation["Instances"]
            if instance["State"]["Name"] not in ("terminated", "shutting-down")
        ]


def user_data(aws: Aws, instance_id: str) -> dict[str, Any]:
    """The instance's cloud-init user data (``#cloud-config`` YAML)."""
    attribute = aws.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    text = base64.b64decode(attribute["UserData"]["Value"]).decode()
    assert text.startswith("#cloud-config\n"), text[:40]
    return dict(yaml.safe_load(text))


def public_half(private_openssh: str) -> str:
    """``ssh-ed25519 AAAA...`` of an OpenSSH private key."""
    key = serialization.load_ssh_private_key(private_openssh.encode(), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return public.decode()


def ca_pem() -> str:
    """A self-signed CA certificate, standing in for AWS's RDS CA bundle."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cachestack test RDS CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def tags(resource: dict[str, Any]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in resource.get("Tags", resource.get("TagList", []))}


def ingress(group: dict[str, Any]) -> set[tuple[Any, ...]]:
    """Every ingress rule as (protocol, from, to, source)."""
    rules = set()
    for permission in group["IpPermissions"]:
        key = (permission["IpProtocol"], permission.get("FromPort"), permission.get("ToPort"))
        for cidr in permission.get("IpRanges", []):
            rules.add((*key, cidr["CidrIp"]))
        for pair in permission.get("UserIdGroupPairs", []):
            rules.add((*key, pair["GroupId"]))
        for cidr in permission.get("Ipv6Ranges", []):
            rules.add((*key, cidr["CidrIpv6"]))
    return rules


@pytest.fixture(scope="module")
def aws(moto_url: str) -> Aws:
    clients = Aws(moto_url)
    clients.ec2.create_key_pair(KeyName=KEY_PAIR)
    return clients


@pytest.fixture(scope="module")
def standin_durations() -> Iterator[None]:
    # Longer than the runs between the teardown and the rebuild: the rebuild meets the
    # deleted secrets' names still held (AWS: seconds to minutes) and must wait them out.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STANDIN_SECRET_PURGE_SECONDS", "45")
        # Longer than the teardown takes from the database being gone to the network's
        # deletions (the NAT gateway's wait comes between): they meet its interfaces. That
        # gap is about 10 s on an idle machine and passed 20 s on a loaded CI run.
        patch.setenv("STANDIN_ENI_LINGER_SECONDS", "45")
        yield


@pytest.fixture(scope="module")
def moto_url(standin_durations: None, moto_url: str) -> str:
    """conftest's server, started after ``standin_durations`` set the environment."""
    return moto_url


@pytest.fixture(scope="module", autouse=True)
def controller_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The controller's files of the stack (known_hosts, the RDS CA bundle) in a temporary
    directory instead of ~/.cachestack/aws; the bundle is put there first (AWS's copy is
    downloaded only when the file is missing, and no test reaches the Internet)."""
    directory = tmp_path_factory.mktemp("controller")
    (directory / "rds-ca-bundle.pem").write_text(ca_pem())
    BASE_VARS["cachestack_known_hosts_file"] = str(directory / "known_hosts")
    BASE_VARS["cachestack_rds_ca_bundle_file"] = str(directory / "rds-ca-bundle.pem")
    yield directory
    del BASE_VARS["cachestack_known_hosts_file"], BASE_VARS["cachestack_rds_ca_bundle_file"]


@pytest.fixture(scope="module", autouse=True)
def secrets_seen() -> Iterator[list[str]]:
    """The secrets every run is checked against (SECRETS); a test adds those it makes."""
    SECRETS.clear()
    yield SECRETS
    SECRETS.clear()


def assert_no_secret(run: Run, secrets: list[str]) -> None:
    output = run.stdout + run.stderr
    for value in secrets:
        assert value not in output, "a secret appeared in Ansible's output"


def assert_account_empty(aws: Aws) -> None:
    assert aws.stack_vpcs() == []
    assert (
        aws.ec2.describe_nat_gateways(
            Filter=[{"Name": "state", "Values": ["pending", "available"]}]
        )["NatGateways"]
        == []
    )
    assert aws.ec2.describe_addresses()["Addresses"] == []
    assert aws.ec2.describe_internet_gateways()["InternetGateways"] == []
    assert [
        g
        for g in aws.ec2.describe_security_groups()["SecurityGroups"]
        if g["GroupName"] != "default"
    ] == []
    assert [s for s in aws.ec2.describe_subnets()["Subnets"] if not s.get("DefaultForAz")] == []
    assert aws.live_instances() == []
    assert aws.rds.describe_db_instances()["DBInstances"] == []
    assert aws.rds.describe_db_subnet_groups()["DBSubnetGroups"] == []
    assert [
        group
        for group in aws.rds.describe_db_parameter_groups()["DBParameterGroups"]
        if group["DBParameterGroupName"].startswith(STACK)
    ] == []
    assert aws.live_replication_groups() == []
    assert aws.secrets.list_secrets()["SecretList"] == []


def test_site_stops_without_a_way_in(moto_url: str, aws: Aws) -> None:
    run = run_playbook(moto_url, "site.yml", extra={"cachestack_ssh_cidrs": []})
    assert run.returncode != 0, explain(run)
    assert "cachestack_ssh_cidrs" in run.stdout + run.stderr
    assert aws.stack_vpcs() == []
    assert aws.secrets.list_secrets()["SecretList"] == []


@pytest.mark.parametrize(
    ("key_name", "says"),
    [
        ("", "aws_web_instance_key_name is empty"),
        ("no-such-key", "aws_web_instance_key_name: the EC2 key pair no-such-key was not found"),
    ],
)
def test_provision_stops_without_a_key_pair_to_log_in_with(
    moto_url: str, aws: Aws, key_name: str, says: str
) -> None:
    run = run_playbook(
        moto_url, "playbooks/provision.yml", extra={"aws_web_instance_key_name": key_name}
    )
    assert run.returncode != 0, explain(run)
    assert says in " ".join((run.stdout + run.stderr).split()), explain(run)
    assert aws.stack_vpcs() == []
    assert aws.secrets.list_secrets()["SecretList"] == []


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (
            {"aws_database_instance_class": "db.t3.nano"},
            "0 availability zone(s) offer everything (none), 2 needed:"
            " ec2:t3.micro in ['us-east-1a', 'us-east-1b', 'us-east-1c', 'us-east-1d',"
            " 'us-east-1f']; rds:db.t3.nano in none",
        ),
        (
            # moto's catalogue, like AWS's, sells no t3.micro in us-east-1e.
            {"aws_network_availability_zones": ["us-east-1a", "us-east-1e"]},
            "aws_network_availability_zones names zones that do not offer both",
        ),
    ],
    ids=["db-class-sold-nowhere", "zone-without-the-instance-type"],
)
def test_provision_stops_unless_two_zones_offer_the_instance_type_and_the_db_class(
    moto_url: str, aws: Aws, extra: dict[str, Any], says: str
) -> None:
    run = run_playbook(moto_url, "playbooks/provision.yml", extra=extra)
    assert run.returncode != 0, explain(run)
    said = " ".join((run.stdout + run.stderr).split())
    assert says in said, explain(run)
    assert "Change aws_web_instance_type or aws_database_instance_class" in said, explain(run)
    assert aws.stack_vpcs() == []
    assert aws.secrets.list_secrets()["SecretList"] == []


def test_check_mode_on_an_empty_account_creates_nothing(moto_url: str, aws: Aws) -> None:
    run = run_playbook(moto_url, "playbooks/provision.yml", check=True)
    assert succeeded(run), explain(run)
    changed = run.changed_tasks()
    for expected in (
        "aws_secrets : Store the secrets in Secrets Manager",
        "aws_network : Create the VPC",
        "aws_database : Create the PostgreSQL instance (private, encrypted, deletion-protected)",
        "aws_cache : Create, update or wait for the replication group"
        " (cluster mode, TLS, AUTH, encrypted at rest)",
        "aws_web_instance : Launch the web instance (IMDSv2 required)",
    ):
        assert expected in changed, changed
    assert_account_empty(aws)


def test_apply_builds_the_stack(moto_url: str, aws: Aws, secrets_seen: list[str]) -> None:
    run = run_playbook(moto_url, "playbooks/provision.yml")
    assert succeeded(run), explain(run)
    assert aws.secret_values() and set(aws.secret_values()) <= set(secrets_seen)

    # Network: VPC, subnets in two AZs, gateways, routes.
    (vpc,) = aws.stack_vpcs()
    vpc_id = vpc["VpcId"]
    assert vpc["CidrBlock"] == "10.0.0.0/16"
    assert tags(vpc) == {"Name": f"{STACK}-vpc", "Stack": STACK}
    for attribute, key in (
        ("enableDnsSupport", "EnableDnsSupport"),
        ("enableDnsHostnames", "EnableDnsHostnames"),
    ):
        assert aws.ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute)[key]["Value"]
    subnets = {
        s["CidrBlock"]: s
        for s in aws.ec2.describe_subnets(Filters=aws.vpc_filter(vpc_id))["Subnets"]
    }
    assert {cidr: s["AvailabilityZone"] for cidr, s in subnets.items()} == {
        "10.0.1.0/24": "us-east-1a",
        "10.0.10.0/24": "us-east-1a",
        "10.0.11.0/24": "us-east-1b",
    }
    assert all(tags(s)["Stack"] == STACK for s in subnets.values())
    public_id = subnets["10.0.1.0/24"]["SubnetId"]
    private_ids = {subnets["10.0.10.0/24"]["SubnetId"], subnets["10.0.11.0/24"]["SubnetId"]}

    (igw,) = aws.ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}]
    )["InternetGateways"]
    assert tags(igw)["Stack"] == STACK
    (nat,) = aws.ec2.describe_nat_gateways(
        Filter=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "state", "Values": ["available"]}]
    )["NatGateways"]
    assert nat["SubnetId"] == public_id
    (nat_eip,) = aws.ec2.describe_addresses(
        Filters=[{"Name": "tag:Name", "Values": [f"{STACK}-nat"]}]
    )["Addresses"]
    assert nat["NatGatewayAddresses"][0]["AllocationId"] == nat_eip["AllocationId"]

    tables = aws.ec2.describe_route_tables(
        Filters=[*aws.vpc_filter(vpc_id), {"Name": "tag:Stack", "Values": [STACK]}]
    )["RouteTables"]
    by_name = {tags(t)["Name"]: t for t in tables}
    assert set(by_name) == {f"{STACK}-public", f"{STACK}-private"}

    def associated(table: dict[str, Any]) -> set[str]:
        return {a["SubnetId"] for a in table["Associations"] if a.get("SubnetId")}

    def default_route(table: dict[str, Any]) -> dict[str, Any]:
        (route,) = [r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        return route

    assert associated(by_name[f"{STACK}-public"]) == {public_id}
    assert default_route(by_name[f"{STACK}-public"])["GatewayId"] == igw["InternetGatewayId"]
    assert associated(by_name[f"{STACK}-private"]) == private_ids
    assert default_route(by_name[f"{STACK}-private"])["NatGatewayId"] == nat["NatGatewayId"]

    # Security groups: every ingress rule.
    web = aws.security_group(vpc_id, "web")
    db = aws.security_group(vpc_id, "db")
    cache = aws.security_group(vpc_id, "cache")
    assert ingress(web) == {("tcp", 80, 80, "0.0.0.0/0"), ("tcp", 22, 22, SSH_CIDR)}
    assert ingress(db) == {("tcp", 5432, 5432, web["GroupId"])}
    assert ingress(cache) == {("tcp", 6379, 6379, web["GroupId"])}

    # RDS PostgreSQL.
    (instance,) = aws.rds.describe_db_instances()["DBInstances"]
    assert instance["DBInstanceIdentifier"] == f"{STACK}-db"
    assert instance["Engine"] == "postgres"
    assert instance["EngineVersion"].split(".")[0] == "17"
    assert instance["DBInstanceClass"] == "db.t3.micro"
    assert instance["AllocatedStorage"] == 20
    assert instance["MaxAllocatedStorage"] == 100
    assert instance["StorageType"] == "gp3"
    assert instance["StorageEncrypted"] is True
    assert instance["PubliclyAccessible"] is False
    assert instance["DeletionProtection"] is True
    assert instance["DBSubnetGroup"]["DBSubnetGroupName"] == f"{STACK}-db"
    assert {s["SubnetIdentifier"] for s in instance["DBSubnetGroup"]["Subnets"]} == private_ids
    assert [g["VpcSecurityGroupId"] for g in instance["VpcSecurityGroups"]] == [db["GroupId"]]
    (parameter_group,) = instance["DBParameterGroups"]
    (described,) = aws.rds.describe_db_parameter_groups(
        DBParameterGroupName=parameter_group["DBParameterGroupName"]
    )["DBParameterGroups"]
    assert described["DBParameterGroupFamily"] == "postgres17"
    assert parameter_group["DBParameterGroupName"] == f"{STACK}-db-postgres17"
    parameters = aws.rds.describe_db_parameters(
        DBParameterGroupName=parameter_group["DBParameterGroupName"]
    )["Parameters"]
    values = {p["ParameterName"]: p.get("ParameterValue") for p in parameters}
    assert values["log_connections"] == "1"

    # ElastiCache replication group.
    (group,) = aws.live_replication_groups()
    assert group["ReplicationGroupId"] == f"{STACK}-cache"
    assert group["ClusterEnabled"] is True
    assert group["ClusterMode"] == "enabled"
    assert len(group["NodeGroups"]) == 1
    assert len(group["NodeGroups"][0]["NodeGroupMembers"]) == 2  # 1 primary + 1 replica
    assert group["AutomaticFailover"] == "enabled"
    assert group["TransitEncryptionEnabled"] is True
    assert group["AuthTokenEnabled"] is True
    assert group["AtRestEncryptionEnabled"] is True
    assert group["ConfigurationEndpoint"]["Port"] == 6379
    assert group["SnapshotRetentionLimit"] == 1
    # Valkey 8.2 with AWS's default cluster-mode group of Valkey 8, on every member.
    assert group["Engine"] == "valkey"
    members = [
        aws.elasticache.describe_cache_clusters(CacheClusterId=member)["CacheClusters"][0]
        for member in group["MemberClusters"]
    ]
    assert {
        (m["Engine"], m["EngineVersion"], m["CacheParameterGroup"]["CacheParameterGroupName"])
        for m in members
    } == {("valkey", "8.2.0", "default.valkey8.cluster.on")}

    # The web instance, its Elastic IP and IMDSv2.
    (web_instance,) = aws.live_instances()
    assert web_instance["State"]["Name"] == "running"
    assert web_instance["InstanceType"] == "t3.micro"
    assert web_instance["KeyName"] == KEY_PAIR
    assert web_instance["SubnetId"] == public_id
    assert [g["GroupId"] for g in web_instance["SecurityGroups"]] == [web["GroupId"]]
    assert web_instance["MetadataOptions"]["HttpTokens"] == "required"
    # The newest official Debian 13 amd64 image, not the newer arm64, backports, pending,
    # Debian 12 or Ubuntu ones of the catalogue; its login user kept in a tag.
    assert web_instance["ImageId"] == NEWEST_DEBIAN_13_AMD64
    (image,) = aws.ec2.describe_images(ImageIds=[web_instance["ImageId"]])["Images"]
    assert (image["OwnerId"], image["Architecture"]) == (DEBIAN, "x86_64")
    assert image["Name"].startswith("debian-13-amd64-")
    assert tags(web_instance)[LOGIN_USER_TAG] == "admin"
    # The root volume asked for is the image's root device (Debian's /dev/xvda).
    assert "/dev/xvda" in {m["DeviceName"] for m in web_instance["BlockDeviceMappings"]}
    assert "/dev/sda1" not in {m["DeviceName"] for m in web_instance["BlockDeviceMappings"]}
    assert tags(web_instance).keys() == {"Name", "Stack", "Role", HOST_KEY_TAG, LOGIN_USER_TAG}
    assert tags(web_instance)["Name"] == f"{STACK}-web"
    assert tags(web_instance)["Stack"] == STACK
    assert tags(web_instance)["Role"] == "web"
    (web_eip,) = aws.ec2.describe_addresses(
        Filters=[{"Name": "instance-id", "Values": [web_instance["InstanceId"]]}]
    )["Addresses"]
    assert tags(web_eip)["Stack"] == STACK

    # Secrets: generated, letters and digits, tagged.
    secrets = {s["Name"]: s for s in aws.secrets.list_secrets()["SecretList"]}
    assert set(secrets) == {f"{STACK}/db-master-password", f"{STACK}/cache-auth-token"}
    for name, length in ((f"{STACK}/db-master-password", 32), (f"{STACK}/cache-auth-token", 64)):
        value = aws.secrets.get_secret_value(SecretId=name)["SecretString"]
        assert len(value) == length and value.isalnum()
        assert tags(secrets[name])["Stack"] == STACK

    # The SSH host key: made on the controller, handed over in the user data (which
    # cloud-init reads), its public half kept in a tag; never in Ansible's output.
    host_key = tags(web_instance)[HOST_KEY_TAG]
    cloud_config = user_data(aws, web_instance["InstanceId"])
    assert cloud_config["ssh_deletekeys"] is True
    assert cloud_config["ssh_genkeytypes"] == ["ed25519"]
    assert cloud_config["ssh_keys"]["ed25519_public"] == host_key
    assert public_half(cloud_config["ssh_keys"]["ed25519_private"]) == host_key
    # OpenSSH reads a key file only with its last newline.
    assert cloud_config["ssh_keys"]["ed25519_private"].endswith(
        "-----END OPENSSH PRIVATE KEY-----\n"
    )
    # run_playbook looks for the private key in every run's output.
    private_lines = cloud_config["ssh_keys"]["ed25519_private"].strip().splitlines()[1:-1]
    assert private_lines and set(private_lines) <= set(secrets_seen)


BASE_IMAGE = "cachestack-base:latest"  # built by scripts/setup


def docker(*args: str, stdin: str | None = None) -> str:
    completed = subprocess.run(
        ["docker", *args], input=stdin, capture_output=True, text=True, timeout=300, check=False
    )
    assert completed.returncode == 0, f"docker {args[0]}: {completed.stderr[-2000:]}"
    return completed.stdout


def test_cloud_init_installs_the_host_key_the_play_checks(aws: Aws) -> None:
    # moto never boots the instance: Debian's cloud-init and sshd, in a container of the
    # project's base image (Debian 13, the web instance's OS), take the instance's user data
    # as a NoCloud seed instead. sshd
    # must then serve exactly the key in the instance's tag (which becomes known_hosts),
    # and no other (the image's own keys are deleted). The scan goes to the container's
    # own loopback, from inside it.
    (web_instance,) = aws.live_instances()
    text = yaml.safe_dump(user_data(aws, web_instance["InstanceId"]))
    name = f"cachestack-cloud-init-{token_hex(4)}"
    docker("run", "-d", "--rm", "--name", name, BASE_IMAGE, "sleep", "600")
    try:
        docker(
            "exec", name, "sh", "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq"
            " --no-install-recommends cloud-init openssh-server >/dev/null",
        )  # fmt: skip
        docker("exec", name, "ssh-keygen", "-A")  # the keys an image comes with
        docker("exec", "-i", name, "sh", "-c",
               "mkdir -p /var/lib/cloud/seed/nocloud && cd /var/lib/cloud/seed/nocloud"
               " && (echo '#cloud-config'; cat) > user-data"
               " && echo 'instance-id: i-cachestack-test' > meta-data",
               stdin=text)  # fmt: skip
        schema = docker(
            "exec", name, "cloud-init", "schema", "-c", "/var/lib/cloud/seed/nocloud/user-data"
        )
        # cloud-init 23 says "Valid cloud-config", 25 (Debian 13's, as on its AMIs)
        # "Valid schema".
        assert "Valid cloud-config" in schema or "Valid schema" in schema, schema
        docker("exec", name, "cloud-init", "init", "--local")
        docker("exec", name, "cloud-init", "init")
        keys = docker("exec", name, "sh", "-c", "ls /etc/ssh/ssh_host_*_key.pub").split()
        assert keys == ["/etc/ssh/ssh_host_ed25519_key.pub"]
        docker(
            "exec",
            name,
            "sh",
            "-c",
            "mkdir -p /run/sshd && /usr/sbin/sshd -o ListenAddress=127.0.0.1",
        )
        scanned = docker("exec", name, "ssh-keyscan", "-T", "10", "127.0.0.1").split("\n")
        served = {
            " ".join(line.split()[1:3]) for line in scanned if line and not line.startswith("#")
        }
        assert served == {tags(web_instance)[HOST_KEY_TAG]}
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60, check=False)


def test_check_mode_again_changes_nothing(moto_url: str, secrets_seen: list[str]) -> None:
    run = run_playbook(moto_url, "playbooks/provision.yml", check=True)
    assert succeeded(run), explain(run)
    assert run.changed_tasks() == []
    assert run.stats["changed"] == 0


def test_second_apply_changes_nothing_and_sets_the_contract(
    moto_url: str, aws: Aws, secrets_seen: list[str], controller_files: Path
) -> None:
    run = run_playbook(moto_url, "tests/integration/aws/contract.yml")
    assert succeeded(run), explain(run)
    # The controller learns the host key the first time; AWS is left as it is.
    assert run.changed_tasks() == [
        "Make the known hosts file, private",
        "Know each web instance's SSH host key",
    ]
    run = run_playbook(moto_url, "tests/integration/aws/contract.yml")
    assert succeeded(run), explain(run)
    assert run.changed_tasks() == []
    (shown,) = [m for m in run.messages() if isinstance(m, dict) and "contract" in m]
    (instance,) = aws.rds.describe_db_instances()["DBInstances"]
    (group,) = aws.live_replication_groups()
    (address,) = aws.ec2.describe_addresses(
        Filters=[{"Name": "instance-id", "Values": [aws.live_instances()[0]["InstanceId"]]}]
    )["Addresses"]
    assert shown["host"] == address["PublicIp"]
    # Debian's images let in admin: the user the instance was launched for (its tag).
    assert shown["ansible_user"] == "admin"
    # Not root: the roles run through sudo.
    assert shown["ansible_become"] is True
    # SSH checks the host against the key it was launched with, from the stack's file.
    known_hosts = controller_files / "known_hosts"
    assert shown["ansible_host_key_checking"] is True
    assert shown["ansible_ssh_common_args"] == (
        f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes"
    )
    (web_instance,) = aws.live_instances()
    assert known_hosts.read_text().splitlines() == [
        f"{address['PublicIp']} {tags(web_instance)[HOST_KEY_TAG]}"
    ]
    assert known_hosts.stat().st_mode & 0o777 == 0o600
    assert shown["contract"] == {
        "cachestack_db_host": instance["Endpoint"]["Address"],
        "cachestack_db_port": 5432,
        "cachestack_db_name": "cachestack",
        "cachestack_db_user": "cachestack",
        "cachestack_db_sslmode": "verify-full",
        "cachestack_db_ca_file": str(controller_files / "rds-ca-bundle.pem"),
        "cachestack_cache_host": group["ConfigurationEndpoint"]["Address"],
        "cachestack_cache_port": 6379,
        "cachestack_cache_tls": True,
        "cachestack_cache_cluster_mode": True,
    }


def test_changing_one_input_changes_only_that(
    moto_url: str, aws: Aws, secrets_seen: list[str]
) -> None:
    run = run_playbook(moto_url, "playbooks/provision.yml", extra=CHANGED_INPUTS)
    assert succeeded(run), explain(run)
    # The cache task runs twice (start, then wait): only the first changes anything.
    assert sorted(run.changed_tasks()) == [
        "aws_cache : Create, update or wait for the replication group"
        " (cluster mode, TLS, AUTH, encrypted at rest)",
        "aws_network : Create the web security group"
        " (HTTP from anywhere, SSH only from the listed CIDRs)",
    ]
    (vpc,) = aws.stack_vpcs()
    web = aws.security_group(vpc["VpcId"], "web")
    assert ingress(web) == {("tcp", 80, 80, "0.0.0.0/0"), ("tcp", 22, 22, NEW_SSH_CIDR)}
    (group,) = aws.live_replication_groups()
    assert group["SnapshotRetentionLimit"] == 3
    assert group["CacheNodeType"] == "cache.t3.small"
    assert group["Status"] == "available"


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (
            {"aws_cache_at_rest_encryption": False},
            f"cache: {STACK}-cache: at_rest_encryption_enabled is True and AWS cannot change"
            " it on an existing replication group",
        ),
        (
            {"aws_database_maintenance_window": "mon:25:00-mon:26:00"},
            "Invalid day:hour:minute value: mon:25:00-mon:26:00",
        ),
    ],
    ids=["cache", "database"],
)
def test_a_change_aws_refuses_stops_with_its_reason(
    moto_url: str, aws: Aws, secrets_seen: list[str], extra: dict[str, Any], says: str
) -> None:
    # The tasks are no_log (their arguments hold secrets): the reason must show all the same.
    run = run_playbook(moto_url, "playbooks/provision.yml", extra={**CHANGED_INPUTS, **extra})
    assert run.returncode != 0, explain(run)
    assert says in " ".join((run.stdout + run.stderr).split()), explain(run)
    assert run.changed_tasks() == []
    (group,) = aws.live_replication_groups()
    assert group["AtRestEncryptionEnabled"] is True
    (instance,) = aws.rds.describe_db_instances()["DBInstances"]
    assert instance["PreferredMaintenanceWindow"] == "sun:05:00-sun:06:00"


def standin_calls(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/cachestack-standin/calls", timeout=10) as response:  # noqa: S310
        return list(json.load(response))


def test_a_cache_engine_and_parameter_group_that_do_not_fit_are_refused_before_any_change(
    moto_url: str, aws: Aws, secrets_seen: list[str]
) -> None:
    logged = len(standin_calls(moto_url))
    mismatched = {
        "cachestack_cache_engine": "valkey",
        "aws_cache_parameter_group_name": "default.redis7.cluster.on",
    }
    run = run_playbook(moto_url, "playbooks/provision.yml", extra={**CHANGED_INPUTS, **mismatched})
    assert run.returncode != 0, explain(run)
    said = " ".join((run.stdout + run.stderr).split())
    assert (
        f"cache: {STACK}-cache: cache_parameter_group_name=default.redis7.cluster.on is a"
        " redis7 group, but engine=valkey engine_version=8.2 needs family valkey8: use"
        " default.valkey8.cluster.on, or leave cache_parameter_group_name unset"
    ) in said, explain(run)
    assert run.changed_tasks() == []
    # No ElastiCache call that changes anything reached the stand-in.
    writes = [
        call
        for call in standin_calls(moto_url)[logged:]
        if call["service"] == "elasticache"
        and not call["operation"].startswith(("List", "Describe"))
    ]
    assert writes == []
    (group,) = aws.live_replication_groups()
    assert group["Engine"] == "valkey"
    member = aws.elasticache.describe_cache_clusters(CacheClusterId=group["MemberClusters"][0])
    assert member["CacheClusters"][0]["CacheParameterGroup"]["CacheParameterGroupName"] == (
        "default.valkey8.cluster.on"
    )


DB_TASK = "aws_database : Create the PostgreSQL instance (private, encrypted, deletion-protected)"
CACHE_TASK = (
    "aws_cache : Create, update or wait for the replication group"
    " (cluster mode, TLS, AUTH, encrypted at rest)"
)
SET_TOKEN_TASK = "aws_cache : Make the new AUTH token the only one the replication group accepts"


def stored_credentials(url: str) -> tuple[set[str], list[str], list[str]]:
    """What moto holds (its model dump; AWS's API never returns these): every master
    password it has held for the instance (its copies keep old ones), the AUTH tokens the
    cache accepts, and the token strategies used, in order."""
    with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=30) as response:  # noqa: S310
        models = json.load(response)
    passwords = {
        i["master_user_password"]
        for i in models["rds"]["DBInstance"]
        if i["db_instance_identifier"] == f"{STACK}-db"
    }
    (group,) = [
        g
        for g in models["elasticache"]["ReplicationGroup"]
        if g["replication_group_id"] == f"{STACK}-cache" and g["status"] != "deleting"
    ]
    return passwords, group["accepted_auth_tokens"], group.get("auth_token_updates", [])


def test_secrets_changed_by_hand_reach_the_database_and_the_cache(
    moto_url: str, aws: Aws, secrets_seen: list[str]
) -> None:
    old_password = aws.secrets.get_secret_value(SecretId=f"{STACK}/db-master-password")
    old_token = aws.secrets.get_secret_value(SecretId=f"{STACK}/cache-auth-token")
    assert stored_credentials(moto_url) == (
        {old_password["SecretString"]},
        [old_token["SecretString"]],
        [],
    )
    # Letters and digits, as RDS and ElastiCache accept.
    password, token = token_hex(16), token_hex(32)
    secrets_seen.extend([password, token])
    aws.secrets.put_secret_value(SecretId=f"{STACK}/db-master-password", SecretString=password)
    aws.secrets.put_secret_value(SecretId=f"{STACK}/cache-auth-token", SecretString=token)

    plan = run_playbook(
        moto_url, "tests/integration/aws/rotate.yml", check=True, extra=CHANGED_INPUTS
    )
    assert succeeded(plan), explain(plan)
    assert {DB_TASK, CACHE_TASK, SET_TOKEN_TASK} <= set(plan.changed_tasks()), plan.changed_tasks()
    passwords, tokens, updates = stored_credentials(moto_url)
    assert password not in passwords
    assert (tokens, updates) == ([old_token["SecretString"]], [])

    run = run_playbook(moto_url, "tests/integration/aws/rotate.yml", extra=CHANGED_INPUTS)
    assert succeeded(run), explain(run)
    assert {DB_TASK, CACHE_TASK, SET_TOKEN_TASK} <= set(run.changed_tasks()), run.changed_tasks()
    passwords, tokens, updates = stored_credentials(moto_url)
    assert password in passwords
    # ROTATE first (the web host keeps working on the old token), then SET.
    assert (tokens, updates) == ([token], ["ROTATE", "SET"])

    again = run_playbook(moto_url, "tests/integration/aws/rotate.yml", extra=CHANGED_INPUTS)
    assert succeeded(again), explain(again)
    assert again.changed_tasks() == []
    assert stored_credentials(moto_url)[1:] == ([token], ["ROTATE", "SET"])


def test_the_nat_gateway_can_be_left_out(moto_url: str, aws: Aws, secrets_seen: list[str]) -> None:
    without_nat = {**CHANGED_INPUTS, "aws_network_nat_gateway": False}
    run = run_playbook(moto_url, "playbooks/provision.yml", extra=without_nat)
    assert succeeded(run), explain(run)
    (vpc,) = aws.stack_vpcs()
    assert (
        aws.ec2.describe_nat_gateways(
            Filter=[
                *aws.vpc_filter(vpc["VpcId"]),
                {"Name": "state", "Values": ["pending", "available"]},
            ]
        )["NatGateways"]
        == []
    )
    assert (
        aws.ec2.describe_addresses(Filters=[{"Name": "tag:Name", "Values": [f"{STACK}-nat"]}])[
            "Addresses"
        ]
        == []
    )
    (private,) = aws.ec2.describe_route_tables(
        Filters=[
            *aws.vpc_filter(vpc["VpcId"]),
            {"Name": "tag:Name", "Values": [f"{STACK}-private"]},
        ]
    )["RouteTables"]
    assert [r for r in private["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"] == []
    again = run_playbook(moto_url, "playbooks/provision.yml", extra=without_nat)
    assert succeeded(again), explain(again)
    assert again.changed_tasks() == []


def test_teardown_refuses_a_protected_database_without_confirmation(
    moto_url: str, aws: Aws
) -> None:
    run = run_playbook(moto_url, "playbooks/teardown.yml", extra={"confirm_teardown": ""})
    assert run.returncode != 0, explain(run)
    assert f"confirm_teardown={STACK}" in run.stdout
    assert run.changed_tasks() == []
    assert len(aws.rds.describe_db_instances()["DBInstances"]) == 1
    assert len(aws.stack_vpcs()) == 1


def test_teardown_leaves_nothing(moto_url: str, aws: Aws, secrets_seen: list[str]) -> None:
    run = run_playbook(moto_url, "playbooks/teardown.yml")
    assert succeeded(run), explain(run)
    assert_account_empty(aws)
    (snapshot,) = aws.rds.describe_db_snapshots()["DBSnapshots"]
    assert snapshot["DBSnapshotIdentifier"].startswith(f"{STACK}-db-final-")
    # The run says where it is.
    said = " ".join(str(message) for message in run.messages())
    assert f"final snapshot is {snapshot['DBSnapshotIdentifier']} in us-east-1" in said, said


def test_second_teardown_changes_nothing(moto_url: str) -> None:
    run = run_playbook(moto_url, "playbooks/teardown.yml")
    assert succeeded(run), explain(run)
    assert run.changed_tasks() == []


def test_configure_on_an_account_without_the_stack_fails_naming_what_is_missing(
    moto_url: str, aws: Aws
) -> None:
    # Runs right after the teardown: nothing to configure, and the play says so instead of
    # ending green with no web host (it never connects anywhere).
    run = run_playbook(moto_url, "playbooks/configure.yml")
    assert run.returncode != 0, explain(run)
    said = " ".join((run.stdout + run.stderr).split())
    assert f"Stack {STACK} in us-east-1 is not complete: web instances running: 0" in said
    assert f"database {STACK}-db: not found" in said
    assert_account_empty(aws)


# The stack as the release before Valkey, PostgreSQL 17 and Debian built it.
PREVIOUS_PLATFORM: dict[str, Any] = {
    "cachestack_cache_engine": "redis",
    "cachestack_cache_engine_version": "7.1",
    "aws_cache_parameter_group_name": "default.redis7.cluster.on",
    "cachestack_database_engine_version": "16",
    "aws_database_parameter_group_family": "postgres16",
    "aws_web_instance_os": "ubuntu",
}


def test_provision_again_after_teardown(moto_url: str, aws: Aws) -> None:
    # Built as the previous release did (the next test moves it to the new defaults).
    run = run_playbook(moto_url, "playbooks/provision.yml", extra=PREVIOUS_PLATFORM)
    assert succeeded(run), explain(run)
    assert len(aws.stack_vpcs()) == 1
    assert len(aws.live_instances()) == 1
    assert len(aws.rds.describe_db_instances()["DBInstances"]) == 1
    assert len(aws.live_replication_groups()) == 1
    # New secrets (the old ones were deleted without a recovery window), stored once
    # Secrets Manager let go of the names (the stand-in refused them meanwhile).
    assert len(aws.secrets.list_secrets()["SecretList"]) == 2
    assert "aws_secrets : Store the secrets in Secrets Manager" in run.changed_tasks()


def test_a_stack_of_the_previous_platform_moves_to_valkey_in_place_and_keeps_the_rest(
    moto_url: str, aws: Aws
) -> None:
    (group,) = aws.live_replication_groups()
    assert group["Engine"] == "redis"
    (instance,) = aws.rds.describe_db_instances()["DBInstances"]
    assert instance["EngineVersion"].split(".")[0] == "16"
    (web_instance,) = aws.live_instances()
    assert tags(web_instance)[LOGIN_USER_TAG] == "ubuntu"
    # An instance launched before the login user tag existed: Ubuntu's.
    aws.ec2.delete_tags(Resources=[web_instance["InstanceId"]], Tags=[{"Key": LOGIN_USER_TAG}])
    logged = len(standin_calls(moto_url))

    run = run_playbook(moto_url, "tests/integration/aws/contract.yml")
    assert succeeded(run), explain(run)
    # The cache: Redis OSS 7.1 to Valkey 8.2 in place, one ModifyReplicationGroup.
    (upgraded,) = aws.live_replication_groups()
    assert upgraded["Engine"] == "valkey"
    assert upgraded["ARN"] == group["ARN"]
    assert upgraded["ConfigurationEndpoint"] == group["ConfigurationEndpoint"]
    (member,) = aws.elasticache.describe_cache_clusters(
        CacheClusterId=upgraded["MemberClusters"][0]
    )["CacheClusters"]
    assert (member["EngineVersion"], member["CacheParameterGroup"]["CacheParameterGroupName"]) == (
        "8.2.0",
        "default.valkey8.cluster.on",
    )
    cache_writes = [
        (call["operation"], call["error"])
        for call in standin_calls(moto_url)[logged:]
        if call["service"] == "elasticache" and not call["operation"].startswith("List")
    ]
    assert cache_writes == [("ModifyReplicationGroup", None)], cache_writes
    # The database keeps PostgreSQL 16 and its postgres16 group (RDS refuses another family).
    (kept,) = aws.rds.describe_db_instances()["DBInstances"]
    assert kept["EngineVersion"].split(".")[0] == "16"
    assert [g["DBParameterGroupName"] for g in kept["DBParameterGroups"]] == [
        f"{STACK}-db-postgres16"
    ]
    assert not [
        g
        for g in aws.rds.describe_db_parameter_groups()["DBParameterGroups"]
        if g["DBParameterGroupName"] == f"{STACK}-db-postgres17"
    ]
    # The Ubuntu instance stays, and Ansible connects to it as ubuntu.
    (still,) = aws.live_instances()
    assert still["InstanceId"] == web_instance["InstanceId"]
    (shown,) = [m for m in run.messages() if isinstance(m, dict) and "contract" in m]
    assert shown["ansible_user"] == "ubuntu"
    assert "aws_web_instance : Launch the web instance (IMDSv2 required)" not in run.changed_tasks()


def test_a_teardown_that_runs_out_of_time_names_what_holds_the_network(
    moto_url: str, aws: Aws
) -> None:
    # The stack built again just above: deleted resources' interfaces outlast a 3 s limit.
    run = run_playbook(
        moto_url,
        "playbooks/teardown.yml",
        extra={"aws_network_dependency_timeout": 3, "aws_network_retry_interval": 1},
    )
    assert run.returncode != 0, explain(run)
    said = " ".join((run.stdout + run.stderr).split())
    assert "was still refused after 3 s" in said, explain(run)
    assert "has a dependent object" in said, explain(run)
    # AWS's reason (the stand-in names the holder in it), then the interfaces AWS lists.
    assert f"dependent object ({STACK}-" in said, explain(run)
    assert "Network interfaces still in the VPC (id: description):" in said, explain(run)
    assert "Run the teardown again once they are gone" in said, explain(run)
    # Run again, it finishes.
    again = run_playbook(moto_url, "playbooks/teardown.yml")
    assert succeeded(again), explain(again)
    assert_account_empty(aws)


# The stand-in's refusals of a resource that is not ready yet (standin_lifecycle.py).
LIFECYCLE_REFUSALS = {
    "InvalidReplicationGroupState",
    "InvalidDBInstanceState",
    "DependencyViolation",
    "CacheSubnetGroupInUse",
    "InvalidDBSubnetGroupStateFault",
    "InvalidIPAddress.InUse",
}


def test_every_call_the_stand_in_refused_was_retried_until_it_succeeded(moto_url: str) -> None:
    # Over every run above: a call AWS refuses while a resource is not ready either waits
    # for it first (and is never refused) or is tried again until AWS takes it.
    with urllib.request.urlopen(f"{moto_url}/cachestack-standin/calls", timeout=10) as response:  # noqa: S310
        calls = json.load(response)
    assert calls, "the stand-in logged no lifecycle call: is it the lifecycle stand-in?"
    unanswered = []
    for index, call in enumerate(calls):
        if call["error"] not in LIFECYCLE_REFUSALS:
            continue
        retried = any(
            later["operation"] == call["operation"]
            and later["resource"] == call["resource"]
            and later["error"] is None
            for later in calls[index + 1 :]
        )
        if not retried:
            unanswered.append(call)
    assert unanswered == [], unanswered
    # The teardown met the interfaces a deleted database leaves behind for a while, and
    # tried again until AWS let the network go.
    assert any(call["error"] == "DependencyViolation" for call in calls), calls
    # The rebuild met the deleted secrets' names still held, and waited them out.
    held = {
        call["resource"]
        for call in calls
        if call["operation"] == "CreateSecret" and call["error"] == "InvalidRequestException"
    }
    assert f"{STACK}/db-master-password" in held, calls
    assert held <= {f"{STACK}/db-master-password", f"{STACK}/cache-auth-token"}, held
