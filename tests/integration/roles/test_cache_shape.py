"""The stack's cache shape (cachestack_cache_shards, cachestack_cache_replicas) is checked
first by both provision plays: a shape ElastiCache refuses stops the run at its first task,
naming the variable, before anything is created or changed.

The real playbooks run with their real inventories. A refused shape ends the play at that
first task (recap: ok=0, changed=0). A shape AWS allows passes it: on AWS, without
cachestack_ssh_cidrs, the play then stops at the next check, before any AWS call.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.localhost_play import ANSIBLE_PLAYBOOK, ROOT, environment

RECAP = re.compile(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)")
PLAYBOOKS = {
    "aws": ROOT / "playbooks" / "aws" / "provision.yml",
    "sandbox": ROOT / "playbooks" / "sandbox" / "provision.yml",
}
SHAPE_TASK = "Stop unless the cache's shape is one ElastiCache allows"


# The sandbox is shared: should the check ever let a run through, check mode and a port
# sandbox_hosts' argument spec refuses stop it at the role's first task, changing nothing.
SANDBOX_GUARD = ["--check", "-e", '{"sandbox_hosts_published_port": "not-a-port"}']


def provision(environment_name: str, extra: dict[str, object]) -> tuple[int, str]:
    if not ANSIBLE_PLAYBOOK.is_file():
        pytest.fail(f"ansible-playbook not found at {ANSIBLE_PLAYBOOK}")
    command = [
        str(ANSIBLE_PLAYBOOK),
        "-i",
        str(ROOT / "inventory" / environment_name),
        "-e",
        json.dumps(extra),
        *(SANDBOX_GUARD if environment_name == "sandbox" else []),
        str(PLAYBOOKS[environment_name]),
    ]
    process = subprocess.run(
        command,
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return process.returncode, process.stdout + process.stderr


@pytest.mark.parametrize("environment_name", ["aws", "sandbox"])
@pytest.mark.parametrize(
    ("shape", "named"),
    [
        ({"cachestack_cache_shards": 0}, "cachestack_cache_shards is 0"),
        ({"cachestack_cache_shards": 501}, "cachestack_cache_shards is 501"),
        ({"cachestack_cache_shards": "three"}, "cachestack_cache_shards is three"),
        ({"cachestack_cache_replicas": 6}, "cachestack_cache_replicas is 6"),
        ({"cachestack_cache_replicas": -1}, "cachestack_cache_replicas is -1"),
        ({"cachestack_cache_replicas": 0}, "needs cachestack_cache_replicas of at least 1"),
    ],
    ids=str,
)
def test_a_shape_elasticache_refuses_stops_the_run_first(
    environment_name: str, shape: dict[str, object], named: str
) -> None:
    returncode, output = provision(environment_name, shape)
    assert returncode != 0, output[-3000:]
    assert f"TASK [{SHAPE_TASK}]" in output, output[-3000:]
    assert named in " ".join(output.split()), output[-3000:]
    recap = RECAP.search(output)
    # The first task failed: nothing ran before it, nothing changed.
    assert recap and recap.groups() == ("0", "0", "1"), output[-3000:]


def test_an_allowed_shape_passes_the_check() -> None:
    shape = {"cachestack_cache_shards": 3, "cachestack_cache_replicas": 2}
    returncode, output = provision("aws", shape)
    # The fleet's two checks pass; the next one (no SSH CIDR given) is what stops this
    # run, before any AWS call.
    assert returncode != 0, output[-3000:]
    assert f"TASK [{SHAPE_TASK}]" in output
    assert "cachestack_ssh_cidrs" in output, output[-3000:]
    recap = RECAP.search(output)
    assert recap and recap.groups() == ("3", "0", "1"), output[-3000:]


def test_the_defaults_are_one_shard_and_one_replica() -> None:
    settings = (ROOT / "group_vars" / "all" / "main.yml").read_text()
    assert re.search(r"^cachestack_cache_shards: 1$", settings, re.MULTILINE)
    assert re.search(r"^cachestack_cache_replicas: 1$", settings, re.MULTILINE)
    # Handed to both environments' roles.
    aws = PLAYBOOKS["aws"].read_text()
    sandbox = PLAYBOOKS["sandbox"].read_text()
    assert 'aws_cache_num_node_groups: "{{ cachestack_cache_shards | int }}"' in aws
    assert 'aws_cache_replicas_per_node_group: "{{ cachestack_cache_replicas | int }}"' in aws
    assert 'sandbox_cache_shards: "{{ cachestack_cache_shards | int }}"' in sandbox
    assert 'sandbox_cache_replicas_per_shard: "{{ cachestack_cache_replicas | int }}"' in sandbox
