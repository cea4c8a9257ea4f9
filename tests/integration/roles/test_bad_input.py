"""Every role refuses bad input (wrong types, malformed CIDRs and addresses, numbers
out of range, missing secrets) with a message naming the variable, before any task
changes anything. Each case includes the role on localhost with one bad value."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests import localhost_play

ROOT = Path(__file__).resolve().parents[3]
SECRET = "s3cret-s3cret-s3cret-s3cret"
TLS = {"src": "/nonexistent.crt"}

# (role, variables, the variable the error must name)
CASES = [
    (
        "sandbox_hosts",
        {"sandbox_hosts_published_port": "not-a-port"},
        "sandbox_hosts_published_port",
    ),
    ("sandbox_hosts", {"sandbox_hosts_published_port": 70000}, "sandbox_hosts_published_port"),
    ("sandbox_hosts", {"sandbox_hosts_state": "gone"}, "sandbox_hosts_state"),
    ("aws_network", {"aws_network_ssh_cidrs": ["10.0.0.0/33"]}, "aws_network_ssh_cidrs"),
    ("aws_network", {"aws_network_vpc_cidr": "not-a-cidr"}, "aws_network_vpc_cidr"),
    ("aws_network", {"aws_network_db_port": "five"}, "aws_network_db_port"),
    ("aws_database", {"aws_database_allocated_storage": "lots"}, "aws_database_allocated_storage"),
    ("aws_database", {"aws_database_storage_type": "floppy"}, "aws_database_storage_type"),
    (
        "aws_database",
        {
            "aws_database_master_password": SECRET,
            "aws_database_subnet_ids": ["subnet-a", "subnet-b"],
            "aws_database_allocated_storage": "10",  # a string, as -e key=value gives it
        },
        "aws_database_allocated_storage is at least 20",
    ),
    (
        "aws_cache",
        {"aws_cache_replicas_per_node_group": "one"},
        "aws_cache_replicas_per_node_group",
    ),
    ("aws_cache", {"aws_cache_engine": "memcached"}, "aws_cache_engine"),
    ("aws_web_instance", {"aws_web_instance_volume_size": "big"}, "aws_web_instance_volume_size"),
    (
        "sandbox_postgresql",
        {"sandbox_postgresql_tls_cert_src": "/x.crt", "sandbox_postgresql_tls_key_src": "/x.key"},
        "sandbox_postgresql_db_password",
    ),
    (
        "sandbox_postgresql",
        {
            "sandbox_postgresql_db_password": SECRET,
            "sandbox_postgresql_tls_cert_src": "/x.crt",
            "sandbox_postgresql_tls_key_src": "/x.key",
            "sandbox_postgresql_allowed_clients": ["10.0.0.0/99"],
        },
        "sandbox_postgresql_allowed_clients",
    ),
    (
        "sandbox_postgresql",
        {
            "sandbox_postgresql_db_password": SECRET,
            "sandbox_postgresql_tls_cert_src": "/x.crt",
            "sandbox_postgresql_tls_key_src": "/x.key",
            # A host name, but also pg_hba's keyword for any address: refused.
            "sandbox_postgresql_allowed_clients": ["web.internal", "all"],
        },
        "sandbox_postgresql_allowed_clients",
    ),
    (
        "sandbox_postgresql",
        {
            "sandbox_postgresql_db_password": SECRET,
            "sandbox_postgresql_tls_cert_src": "/x.crt",
            "sandbox_postgresql_tls_key_src": "/x.key",
            # pg_hba.conf would refuse these, and a reload would keep the old rules quietly.
            "sandbox_postgresql_allowed_clients": ["10.0.1.300", "10.0.1.15:5432", "1:2"],
        },
        "['10.0.1.300', '10.0.1.15:5432', '1:2']",
    ),
    (
        "sandbox_postgresql",
        {
            "sandbox_postgresql_db_password": SECRET,
            "sandbox_postgresql_tls_cert_src": "/x.crt",
            "sandbox_postgresql_tls_key_src": "/x.key",
            "sandbox_postgresql_port": 99999,
        },
        "sandbox_postgresql_port",
    ),
    (
        "sandbox_cache",
        {
            "sandbox_cache_tls_cert_src": "/x.crt",
            "sandbox_cache_tls_key_src": "/x.key",
            "sandbox_cache_tls_ca_src": "/ca.crt",
        },
        "sandbox_cache_auth_token",
    ),
    (
        "sandbox_cache",
        {
            "sandbox_cache_auth_token": SECRET,
            "sandbox_cache_tls_cert_src": "/x.crt",
            "sandbox_cache_tls_key_src": "/x.key",
            "sandbox_cache_tls_ca_src": "/ca.crt",
            "sandbox_cache_shards": 0,
        },
        "sandbox_cache_shards",
    ),
    (
        "sandbox_cache",
        {
            "sandbox_cache_auth_token": SECRET,
            "sandbox_cache_tls_cert_src": "/x.crt",
            "sandbox_cache_tls_key_src": "/x.key",
            "sandbox_cache_tls_ca_src": "/ca.crt",
            # ElastiCache's third engine, which Debian's archive does not have.
            "sandbox_cache_engine": "memcached",
        },
        "sandbox_cache_engine",
    ),
    (
        "web_app",
        {"cachestack_db_host": "db", "cachestack_cache_host": "cache"},
        "web_app_db_password",
    ),
    (
        "web_app",
        {
            "cachestack_db_host": "db",
            "cachestack_cache_host": "cache",
            "cachestack_db_password": SECRET,
            "web_app_cache_ttl": "soon",
        },
        "web_app_cache_ttl",
    ),
    (
        "web_app",
        {
            "cachestack_db_host": "db",
            "cachestack_cache_host": "cache",
            "cachestack_db_password": SECRET,
            "web_app_db_sslmode": "prefer",
            "web_app_db_ca_file": str(ROOT / "README.md"),  # a file that exists
        },
        "web_app_db_ca_file is set but web_app_db_sslmode prefer",
    ),
    (
        "web_app",
        {
            "cachestack_db_host": "db",
            "cachestack_cache_host": "cache",
            "cachestack_db_password": SECRET,
            "web_app_db_statement_timeout": 0.0004,
        },
        "web_app_db_statement_timeout",
    ),
    (
        "web_app",
        {
            "cachestack_db_host": "db",
            "cachestack_cache_host": "cache",
            "cachestack_db_password": SECRET,
            "web_app_cache_ttl": 10**16,
        },
        "web_app_cache_ttl must be at most",
    ),
    (
        "web_app",
        {
            "cachestack_db_host": "db",
            "cachestack_cache_host": "cache",
            "cachestack_db_password": SECRET,
            "web_app_db_statement_timeout": 60,  # a cold page may wait 3 + 60 + 4 s for the lock
            "web_app_gunicorn_timeout": 60,
        },
        "web_app_gunicorn_timeout must exceed the cache lock wait (67.0 s)",
    ),
    (
        "web_app",
        {
            "cachestack_db_host": "db",
            "cachestack_cache_host": "cache",
            "cachestack_db_password": SECRET,
            "web_app_cache_lock_timeout": -1,
        },
        "web_app_cache_lock_timeout 0 or more",
    ),
    ("web_nginx", {"web_nginx_listen_port": "eighty"}, "web_nginx_listen_port"),
    ("web_nginx", {"web_nginx_listen_port": 70000}, "web_nginx_listen_port"),
    ("sandbox_tls_ca", {"sandbox_tls_ca_certificates": [{"name": "x"}]}, "subject_alt_names"),
]
RECAP = re.compile(r"localhost\s+: ok=\d+\s+changed=(\d+)")


def run_role(
    tmp_path: Path, role: str, variables: dict, *options: str, tasks_from: str = "main"
) -> subprocess.CompletedProcess:
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(variables))
    extra.chmod(0o600)
    task = {
        "ansible.builtin.include_role": {"name": f"cachestack.aws.{role}", "tasks_from": tasks_from}
    }
    playbook = localhost_play.write_play(tmp_path / "play.yml", [task])
    return localhost_play.run(
        playbook,
        "-e",
        f"@{extra}",
        *options,
        env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )


@pytest.mark.parametrize(
    ("role", "variables", "named"), CASES, ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(CASES)]
)
def test_bad_input_is_refused_by_name_before_any_change(
    tmp_path: Path, role: str, variables: dict, named: str
) -> None:
    result = run_role(tmp_path, role, variables)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert named in output, output[-3000:]
    changed = RECAP.search(output)
    assert changed and changed[1] == "0", output[-3000:]
    assert SECRET not in output


# Numbers as -e key=value gives them: strings. The checks must read them as numbers, not
# stop on comparing a string with an int. (--check: no certificate files or subnets.)
STRING_NUMBERS = [
    ("aws_cache", {"aws_cache_auth_token": SECRET, "aws_cache_replicas_per_node_group": "2"}),
    ("sandbox_postgresql", {"sandbox_postgresql_port": "5433"}),
    (
        "sandbox_cache",
        {
            "sandbox_cache_shards": "2",
            "sandbox_cache_replicas_per_shard": "1",
            "sandbox_cache_port": "7000",
            "sandbox_cache_maxmemory_mb": "64",
        },
    ),
    ("aws_web_instance", {"aws_web_instance_metadata_hop_limit": "3"}),
]
REQUIRED = {
    "sandbox_postgresql": {
        "sandbox_postgresql_db_password": SECRET,
        "sandbox_postgresql_tls_cert_src": "/x.crt",
        "sandbox_postgresql_tls_key_src": "/x.key",
        "sandbox_postgresql_allowed_clients": ["10.0.1.0/24"],
    },
    "sandbox_cache": {
        "sandbox_cache_auth_token": SECRET,
        "sandbox_cache_tls_cert_src": "/x.crt",
        "sandbox_cache_tls_key_src": "/x.key",
        "sandbox_cache_tls_ca_src": "/ca.crt",
    },
}


@pytest.mark.parametrize(("role", "variables"), STRING_NUMBERS, ids=[c[0] for c in STRING_NUMBERS])
def test_numbers_given_as_strings_pass_the_checks(
    tmp_path: Path, role: str, variables: dict
) -> None:
    result = run_role(
        tmp_path, role, {**REQUIRED.get(role, {}), **variables}, "--check", tasks_from="preflight"
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert SECRET not in output
