"""The plays need no more than ``docs/iam-policy.json``'s actions: moto with IAM enforced.

A user holding only the policy's actions (an inline policy) provisions the stack, runs
provisioning again and tears it down against moto with IAM enforcement on; without one
action the play needs (``ec2:CreateVpc``) provisioning stops with AWS's message naming it.

How moto enforces IAM, and what that leaves unchecked:

- Enforcement starts after ``POST /moto-api/reset-auth`` with the number of requests still
  let through unauthenticated (0 here, once the users and the key pair exist); posting
  ``inf`` turns it off again. Each request is then signed with the user's key (an unknown
  key is refused) and its action checked against the user's policies.
- moto checks actions only. It evaluates every request against the resource ``*`` and
  knows none of the tag condition keys (``aws:RequestTag/Stack``, ``aws:ResourceTag/Stack``,
  ``ec2:CreateAction``, ``iam:AWSServiceName``), so a scoped statement would allow nothing.
  The user's policy is therefore docs/iam-policy.json with every ``Resource`` widened to
  ``*`` and every ``Condition`` dropped. The scoping itself is checked by parliament
  (tests/static/test_iam_policy.py) and explained in docs/iam-policy.md, not here.
- moto's check sits in the request dispatch every service's responses share, so it covers
  every service the plays call: EC2, RDS, ElastiCache and Secrets Manager (modules and the
  ``amazon.aws.secretsmanager_secret`` lookup alike), and IAM itself; the last test below
  shows each refusing an action the user lacks. ``sts:GetCallerIdentity`` (amazon.aws
  modules call it for the account ID) is always allowed, by moto as by AWS, which asks no
  permission for it: the policy does not name it.
- Dependent actions AWS checks besides the called one (``ec2:CreateTags`` for tags given at
  creation, ``rds:AddTagsToResource``, ``rds:CreateDBSnapshot`` for the final snapshot of
  ``DeleteDBInstance``, ``iam:CreateServiceLinkedRole`` on an account's first RDS or
  ElastiCache resource) are not checked by moto; the policy grants them all the same.
"""

from __future__ import annotations

import copy
import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.integration.aws.test_aws_playbooks import (
    KEY_PAIR,
    REPO,
    STACK,
    Aws,
    Run,
    explain,
    remember_secrets,
    run_playbook,
    succeeded,
)
from tests.servers.moto import REGION, aws_env

POLICY = Path(REPO) / "docs" / "iam-policy.json"
USER = "cachestack-deployer"
# Reached early: the VPC is the network role's first resource.
DROPPED_ACTION = "ec2:CreateVpc"
USER_WITHOUT_ACTION = "cachestack-deployer-without-createvpc"
USER_WITHOUT_POLICY = "cachestack-nobody"
DENIED = "not authorized to perform"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def actions_only(policy: dict[str, Any], without: str | None = None) -> dict[str, Any]:
    """The policy as moto can evaluate it: resources ``*``, no conditions, less ``without``."""
    widened = copy.deepcopy(policy)
    statements = []
    for statement in widened["Statement"]:
        statement.pop("Condition", None)
        statement["Resource"] = "*"
        statement["Action"] = [a for a in as_list(statement["Action"]) if a != without]
        if statement["Action"]:
            statements.append(statement)
    widened["Statement"] = statements
    return widened


def reset_auth(url: str, count: str) -> None:
    """Let ``count`` more requests through unauthenticated, then enforce IAM (moto's API)."""
    # Not form-encoded (urllib's default), which Flask would parse away from request.data.
    request = urllib.request.Request(  # noqa: S310
        f"{url}/moto-api/reset-auth",
        data=count.encode(),
        headers={"Content-Type": "text/plain"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status == 200


@contextmanager
def iam_enforced(url: str) -> Iterator[None]:
    reset_auth(url, "0")
    try:
        yield
    finally:
        reset_auth(url, "inf")


def client(url: str, service: str, keys: dict[str, str]) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="module")
def users(moto_url: str) -> dict[str, dict[str, str]]:
    """Access keys of the users, made with moto's root credentials before IAM is enforced."""
    root = aws_env(moto_url)
    iam = client(moto_url, "iam", root)
    policy = json.loads(POLICY.read_text())
    documents = {
        USER: actions_only(policy),
        USER_WITHOUT_ACTION: actions_only(policy, without=DROPPED_ACTION),
        USER_WITHOUT_POLICY: None,
    }
    assert DROPPED_ACTION not in json.dumps(documents[USER_WITHOUT_ACTION])
    keys = {}
    for name, document in documents.items():
        iam.create_user(UserName=name)
        if document is not None:
            iam.put_user_policy(
                UserName=name, PolicyName="cachestack", PolicyDocument=json.dumps(document)
            )
        key = iam.create_access_key(UserName=name)["AccessKey"]
        keys[name] = {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }
    # The key pair a user brings (imported or made before, with other rights).
    Aws(moto_url).ec2.create_key_pair(KeyName=KEY_PAIR)
    return keys


def remember_secrets_as_root(url: str) -> None:
    """remember_secrets with moto's root credentials, which enforced IAM refuses: the
    bookkeeping calls go through with enforcement lifted, and it is back on for the run."""
    reset_auth(url, "inf")
    try:
        remember_secrets(url)
    finally:
        reset_auth(url, "0")


def run_as(url: str, keys: dict[str, str], playbook: str) -> Run:
    """run_playbook of test_aws_playbooks, signed with ``keys`` instead of moto's root."""
    return run_playbook(url, playbook, keys=keys, learn_secrets=remember_secrets_as_root)


def output(run: Run) -> str:
    return " ".join((run.stdout + run.stderr).split())


def test_provision_rerun_and_teardown_need_only_the_policy(
    moto_url: str, users: dict[str, dict[str, str]]
) -> None:
    aws = Aws(moto_url)
    with iam_enforced(moto_url):
        for step, playbook in (
            ("provision", "playbooks/provision.yml"),
            ("rerun", "playbooks/provision.yml"),
            ("teardown", "playbooks/teardown.yml"),
        ):
            run = run_as(moto_url, users[USER], playbook)
            assert succeeded(run), f"{step}: {explain(run)}"
            # A refusal a task tolerates (failed_when: false) must not hide here either.
            assert DENIED not in output(run), f"{step}: {explain(run)}"
            if step == "provision":
                with pytest.raises(ClientError, match=r"AuthFailure"):
                    aws.ec2.describe_vpcs()  # moto's root keys are refused: IAM is on
                assert len(client(moto_url, "ec2", users[USER]).describe_vpcs()["Vpcs"]) >= 1
    assert aws.stack_vpcs() == []
    assert aws.rds.describe_db_instances()["DBInstances"] == []
    assert aws.secrets.list_secrets()["SecretList"] == []


def test_without_one_needed_action_the_play_stops_naming_it(
    moto_url: str, users: dict[str, dict[str, str]]
) -> None:
    with iam_enforced(moto_url):
        run = run_as(moto_url, users[USER_WITHOUT_ACTION], "playbooks/provision.yml")
    assert run.returncode != 0, explain(run)
    assert f"{DENIED}: {DROPPED_ACTION}" in output(run), explain(run)
    assert f"user/{USER_WITHOUT_ACTION}" in output(run), explain(run)
    assert Aws(moto_url).stack_vpcs() == []


# One call per service the policy names, and the action moto checks for it.
CALLS = [
    ("ec2", "describe_vpcs", {}, "ec2:DescribeVpcs"),
    (
        "rds",
        "describe_db_instances",
        {"DBInstanceIdentifier": f"{STACK}-db"},
        "rds:DescribeDBInstances",
    ),
    ("elasticache", "describe_replication_groups", {}, "elasticache:DescribeReplicationGroups"),
    (
        "secretsmanager",
        "describe_secret",
        {"SecretId": f"{STACK}/db-master-password"},
        "secretsmanager:DescribeSecret",
    ),
    (
        "iam",
        "create_service_linked_role",
        {"AWSServiceName": "rds.amazonaws.com"},
        "iam:CreateServiceLinkedRole",
    ),
]


@pytest.mark.parametrize(
    ("service", "method", "kwargs", "action"), CALLS, ids=[c[0] for c in CALLS]
)
def test_moto_enforces_iam_for_every_service_of_the_policy(
    moto_url: str,
    users: dict[str, dict[str, str]],
    service: str,
    method: str,
    kwargs: dict[str, str],
    action: str,
) -> None:
    policy = json.loads(POLICY.read_text())
    assert any(action in as_list(s["Action"]) for s in policy["Statement"]), action
    with iam_enforced(moto_url):
        with pytest.raises(ClientError) as refused:
            getattr(client(moto_url, service, users[USER_WITHOUT_POLICY]), method)(**kwargs)
        # The one call AWS and moto allow without any permission.
        sts = client(moto_url, "sts", users[USER_WITHOUT_POLICY])
        assert sts.get_caller_identity()["Arn"].endswith(f"user/{USER_WITHOUT_POLICY}")
    assert f"{DENIED}: {action}" in str(refused.value)
