"""The endpoints contract is declared once (roles/common/meta/argument_specs.yml, entry
point contract), and everything else that names it agrees with that declaration: what each
environment sets, what the web host's roles read, and the table in docs/architecture.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "roles" / "common" / "meta" / "argument_specs.yml"
CONTRACT_VAR = re.compile(r"\bcachestack_(?:db|cache|public)_[a-z_]+\b")


def contract() -> dict[str, dict]:
    return yaml.safe_load(SPEC.read_text())["argument_specs"]["contract"]["options"]


def required() -> set[str]:
    return {name for name, spec in contract().items() if spec.get("required")}


def task_named(path: Path, name: str) -> dict:
    plays = yaml.safe_load(path.read_text())
    for play in plays:
        for task in play.get("tasks", []):
            if task.get("name") == name:
                return task
    raise AssertionError(f"{path.relative_to(ROOT)} has no task named {name!r}")


def contract_keys(args: dict) -> set[str]:
    return {key for key in args if key.startswith("cachestack_")}


def test_the_sandbox_sets_the_contract_and_nothing_else() -> None:
    task = task_named(ROOT / "playbooks/sandbox/provision.yml", "Set the endpoints contract")
    set_here = contract_keys(task["ansible.builtin.set_fact"])
    assert required() <= set_here, f"the sandbox does not set {sorted(required() - set_here)}"
    strangers = sorted(set_here - contract().keys())
    assert not strangers, f"not in the contract: {strangers}"


def test_aws_sets_the_contract_and_nothing_else() -> None:
    task = task_named(
        ROOT / "playbooks/aws/web_hosts.yml",
        "Add the web instances to the group web, with the endpoints contract",
    )
    set_here = contract_keys(task["ansible.builtin.add_host"])
    assert required() <= set_here, f"AWS does not set {sorted(required() - set_here)}"
    strangers = sorted(set_here - contract().keys())
    assert not strangers, f"not in the contract: {strangers}"


def test_the_web_roles_read_only_the_contract() -> None:
    read: dict[str, str] = {}
    for role in ("web_app", "web_nginx"):
        for path in (ROOT / "roles" / role).rglob("*"):
            if path.suffix in {".yml", ".j2"} and "meta" not in path.parts:
                for name in CONTRACT_VAR.findall(path.read_text()):
                    read[name] = str(path.relative_to(ROOT))
    unknown = {name: where for name, where in read.items() if name not in contract()}
    assert not unknown, f"read by the web roles but not in the contract: {unknown}"
    assert read, "the web roles read no contract variable: the pattern is wrong"


def test_the_architecture_doc_lists_the_contract() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    listed = set(re.findall(r"`(cachestack_[a-z_]+)`", doc.split("## The endpoints contract")[1]))
    missing = contract().keys() - listed
    assert not missing, f"docs/architecture.md's contract section does not list {sorted(missing)}"
    strangers = {name for name in listed if CONTRACT_VAR.fullmatch(name)} - contract().keys()
    assert not strangers, f"docs/architecture.md lists {sorted(strangers)}, not in the contract"


def test_the_secrets_are_marked_no_log() -> None:
    secret = {name for name, spec in contract().items() if spec.get("no_log")}
    assert secret == {"cachestack_db_password", "cachestack_cache_auth_token"}
