"""``docs/iam-policy.json`` passes ``parliament``, the IAM policy linter, with no findings.

parliament checks that every action exists, that every statement's resources fit its
actions' resource types, and that every condition key applies to its actions. Its default
auditors run, as its command line runs them (the community auditors are opt-in there too).

One kind of finding is answered instead of accepted blindly: parliament wants each
statement to name every resource type an action requires, while AWS authorizes each
resource of a request against all the statements together. The policy splits
``ec2:RunInstances`` and the EC2 create actions over statements on purpose (the resource
being created is scoped by ``aws:RequestTag/Stack``, the VPC, subnet or address it goes
into by ``aws:ResourceTag/Stack``, the image and key pair by nothing), as AWS's own examples
do. Such a finding is excused only when parliament itself finds no mismatch for the action
once the resources of every statement that allows it are put together; any other finding
fails the test.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    # parliament imports pkg_resources, which warns that it is deprecated.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", UserWarning)
    from parliament import analyze_policy_string

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "docs" / "iam-policy.json"


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def findings(policy: dict[str, Any]) -> list[Any]:
    return list(analyze_policy_string(json.dumps(policy, indent=2), filepath=str(POLICY)).findings)


def joined_statement(policy: dict[str, Any], action: str) -> dict[str, Any]:
    """One statement allowing ``action`` on the resources of every statement that allows it."""
    resources: list[str] = []
    for statement in policy["Statement"]:
        if statement["Effect"] == "Allow" and action in as_list(statement["Action"]):
            resources += [r for r in as_list(statement["Resource"]) if r not in resources]
    return {"Effect": "Allow", "Action": action, "Resource": resources}


def unexplained(policy: dict[str, Any]) -> list[Any]:
    """parliament's findings, less the mismatches the statements together answer."""
    left = []
    for finding in findings(policy):
        if finding.issue == "RESOURCE_MISMATCH":
            actions = sorted({item["action"] for item in finding.detail})
            joined = {
                "Version": "2012-10-17",
                "Statement": [joined_statement(policy, action) for action in actions],
            }
            if not findings(joined):
                continue
        left.append(finding)
    return left


def describe(found: list[Any]) -> str:
    return "\n".join(f"{f.issue}: {f.detail} at {f.location}" for f in found)


def load() -> dict[str, Any]:
    policy: dict[str, Any] = json.loads(POLICY.read_text())
    return policy


def test_the_policy_has_no_parliament_findings() -> None:
    found = unexplained(load())
    assert found == [], describe(found)


def test_every_statement_has_a_unique_sid() -> None:
    sids = [statement.get("Sid") for statement in load()["Statement"]]
    assert all(sids) and len(set(sids)) == len(sids), sids


def test_an_unknown_action_is_a_finding() -> None:
    policy = load()
    first = policy["Statement"][0]
    first["Action"] = [*as_list(first["Action"]), "ec2:CreateVpcs"]
    assert "UNKNOWN_ACTION" in {f.issue for f in unexplained(policy)}


def test_a_resource_no_statement_fits_is_not_excused() -> None:
    # RunInstances left only on images and key pairs: no other statement gives it a
    # subnet, so the mismatch stays as parliament reports it.
    policy = load()
    for statement in policy["Statement"]:
        actions = as_list(statement["Action"])
        if "ec2:RunInstances" in actions and statement["Sid"] != "Ec2LaunchFromImageAndKeyPair":
            statement["Action"] = [a for a in actions if a != "ec2:RunInstances"]
    found = unexplained(policy)
    assert any(
        f.issue == "RESOURCE_MISMATCH" and "ec2:RunInstances" in str(f.detail) for f in found
    ), describe(found)
