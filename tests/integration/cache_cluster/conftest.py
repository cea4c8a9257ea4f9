"""Run cachestack.aws.valkey_cluster through real ansible-playbook processes against real
cluster-mode nodes (TLS, AUTH) from tests/servers/redis.py, not yet joined.

Each run writes a one-task playbook and a 0600 vars file holding the token (never on a
command line) to the test's tmp_path, runs ansible-playbook from the repository root (its
ansible.cfg resolves cachestack.aws from this checkout) with the ansible.posix.json
callback, and returns the task's result. The module drives the host's redis-cli (a Redis
OSS 7 client, the one Debian ships; it speaks to Valkey and Redis alike).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# tls_certificates is a session fixture, imported so pytest finds it here.
from tests import localhost_play
from tests.servers.redis import (  # noqa: F401  # pylint: disable=unused-import
    RedisServer,
    TLSCertificates,
    start_redis,
    tls_certificates,
)

ROOT = Path(__file__).resolve().parents[3]
COLLECTIONS = ROOT / ".collections"


class PlayRun(localhost_play.ModuleRun):
    """A run of the valkey_cluster module."""

    @property
    def kinds(self) -> list[tuple[str, int]]:
        return [(a["action"], a["port"]) for a in self.result.get("actions", [])]


class Nodes:
    """Cluster-mode nodes of one engine, each alone, and the module run against them."""

    def __init__(
        self, nodes: list[RedisServer], token: str, certs: TLSCertificates, tmp: Path
    ) -> None:
        self.nodes = nodes
        self.token = token
        self.certs = certs
        self.tmp = tmp
        self._n = 0
        self.vars_file = tmp / "secret-vars.json"
        fd = os.open(self.vars_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"cache_token": token}, fh)
        self.cli = shutil.which("redis-cli") or shutil.which("valkey-cli")
        if not self.cli:
            raise FileNotFoundError(
                "neither redis-cli nor valkey-cli on PATH: apt-get install redis-tools"
            )
        link = COLLECTIONS / "ansible_collections" / "cachestack" / "aws"
        if link.resolve() != ROOT:
            raise FileNotFoundError(f"{link} does not lead to {ROOT}: run scripts/setup")

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes]

    def run(self, check: bool = False, diff: bool = False, **overrides: Any) -> PlayRun:
        self._n += 1
        args: dict[str, Any] = {
            "ports": self.ports,
            "shards": 1,
            "replicas_per_shard": len(self.nodes) - 1,
            "cli": self.cli,
            "ca_cert": str(self.certs.ca_file),
            "auth_token": "{{ cache_token }}",
            "live_settings": {"maxmemory": "0", "appendonly": "no", "save": ""},
            "wait_timeout": 60,
        }
        args.update(overrides)
        play = [
            {
                "name": "Cluster",
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": [{"name": "Cluster", "cachestack.aws.valkey_cluster": args}],
            }
        ]
        playbook = self.tmp / f"play{self._n}.yml"
        playbook.write_text(json.dumps(play, indent=2))
        options = ["-e", f"@{self.vars_file}", *(["--check"] * check), *(["--diff"] * diff)]
        cmd = localhost_play.command(playbook, *options)
        env = localhost_play.environment(json_output=True)
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False
        )
        try:
            result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
        except (ValueError, KeyError, IndexError) as exc:
            raise AssertionError(
                f"no module result from ansible-playbook {playbook} (rc {proc.returncode}):\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            ) from exc
        return PlayRun(proc.returncode, proc.stdout, proc.stderr, result)

    def command(self, node: RedisServer, *args: Any) -> Any:
        client = node.client(decode_responses=True)
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    def myself(self, node: RedisServer) -> dict[str, Any]:
        view = self.command(node, "CLUSTER NODES")
        return next(v for v in view.values() if "myself" in v["flags"])


@pytest.fixture(params=["valkey", "redis"])
def cluster_nodes(
    request: pytest.FixtureRequest,
    tls_certificates: TLSCertificates,  # noqa: F811  # pylint: disable=redefined-outer-name
    tmp_path: Path,
) -> Iterator[Nodes]:
    """Two TLS + AUTH cluster-mode nodes of the engine, not joined (primary and replica to be)."""
    token = secrets.token_urlsafe(24)
    nodes: list[RedisServer] = []
    try:
        for _node in range(2):
            nodes.append(
                start_redis(
                    password=token, certs=tls_certificates, cluster=True, engine=request.param
                )
            )
        yield Nodes(nodes, token, tls_certificates, tmp_path)
    finally:
        for node in nodes:
            node.destroy()


@pytest.fixture(params=["valkey", "redis"])
def make_nodes(
    request: pytest.FixtureRequest,
    tls_certificates: TLSCertificates,  # noqa: F811  # pylint: disable=redefined-outer-name
    tmp_path: Path,
) -> Iterator[Any]:
    """A function: ``make_nodes(n)`` starts n TLS + AUTH cluster-mode nodes of the engine,
    not joined, and returns their :class:`Nodes`; all are destroyed after the test."""
    token = secrets.token_urlsafe(24)
    started: list[RedisServer] = []

    def make(count: int) -> Nodes:
        nodes = []
        for _node in range(count):
            node = start_redis(
                password=token, certs=tls_certificates, cluster=True, engine=request.param
            )
            started.append(node)
            nodes.append(node)
        return Nodes(nodes, token, tls_certificates, tmp_path)

    make.engine = request.param  # type: ignore[attr-defined]
    try:
        yield make
    finally:
        for node in started:
            node.destroy()
