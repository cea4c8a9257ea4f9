"""Every role refuses bad input (wrong types, malformed CIDRs and addresses, numbers
out of range, missing secrets) with a message naming the variable, before any task
changes anything. Each case includes the role on localhost with one bad value."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent
SECRET = "s3cret-s3cret-s3cret-s3cret"
TLS = {"src": "/nonexistent.crt"}

# (role, variables, the variable the error must name)
CASES = [
    ("sandbox", {"sandbox_published_port": "not-a-port"}, "sandbox_published_port"),
    ("sandbox", {"sandbox_published_port": 70000}, "sandbox_published_port"),
    ("sandbox", {"sandbox_state": "gone"}, "sandbox_state"),
    ("network", {"network_ssh_cidrs": ["10.0.0.0/33"]}, "network_ssh_cidrs"),
    ("network", {"network_vpc_cidr": "not-a-cidr"}, "network_vpc_cidr"),
    ("network", {"network_db_port": "five"}, "network_db_port"),
    ("database", {"database_allocated_storage": "lots"}, "database_allocated_storage"),
    ("database", {"database_storage_type": "floppy"}, "database_storage_type"),
    (
        "database",
        {
            "database_master_password": SECRET,
            "database_subnet_ids": ["subnet-a", "subnet-b"],
            "database_allocated_storage": "10",  # a string, as -e key=value gives it
        },
        "database_allocated_storage is at least 20",
    ),
    ("cache", {"cache_replicas_per_node_group": "one"}, "cache_replicas_per_node_group"),
    ("cache", {"cache_engine": "memcached"}, "cache_engine"),
    ("web_instance", {"web_instance_volume_size": "big"}, "web_instance_volume_size"),
    (
        "postgresql_server",
        {"postgresql_server_tls_cert_src": "/x.crt", "postgresql_server_tls_key_src": "/x.key"},
        "postgresql_server_db_password",
    ),
    (
        "postgresql_server",
        {
            "postgresql_server_db_password": SECRET,
            "postgresql_server_tls_cert_src": "/x.crt",
            "postgresql_server_tls_key_src": "/x.key",
            "postgresql_server_allowed_clients": ["10.0.0.0/99"],
        },
        "postgresql_server_allowed_clients",
    ),
    (
        "postgresql_server",
        {
            "postgresql_server_db_password": SECRET,
            "postgresql_server_tls_cert_src": "/x.crt",
            "postgresql_server_tls_key_src": "/x.key",
            # A host name, but also pg_hba's keyword for any address: refused.
            "postgresql_server_allowed_clients": ["web.internal", "all"],
        },
        "postgresql_server_allowed_clients",
    ),
    (
        "postgresql_server",
        {
            "postgresql_server_db_password": SECRET,
            "postgresql_server_tls_cert_src": "/x.crt",
            "postgresql_server_tls_key_src": "/x.key",
            # pg_hba.conf would refuse these, and a reload would keep the old rules quietly.
            "postgresql_server_allowed_clients": ["10.0.1.300", "10.0.1.15:5432", "1:2"],
        },
        "['10.0.1.300', '10.0.1.15:5432', '1:2']",
    ),
    (
        "postgresql_server",
        {
            "postgresql_server_db_password": SECRET,
            "postgresql_server_tls_cert_src": "/x.crt",
            "postgresql_server_tls_key_src": "/x.key",
            "postgresql_server_port": 99999,
        },
        "postgresql_server_port",
    ),
    (
        "cache_server",
        {
            "cache_server_tls_cert_src": "/x.crt",
            "cache_server_tls_key_src": "/x.key",
            "cache_server_tls_ca_src": "/ca.crt",
        },
        "cache_server_auth_token",
    ),
    (
        "cache_server",
        {
            "cache_server_auth_token": SECRET,
            "cache_server_tls_cert_src": "/x.crt",
            "cache_server_tls_key_src": "/x.key",
            "cache_server_tls_ca_src": "/ca.crt",
            "cache_server_shards": 0,
        },
        "cache_server_shards",
    ),
    (
        "cache_server",
        {
            "cache_server_auth_token": SECRET,
            "cache_server_tls_cert_src": "/x.crt",
            "cache_server_tls_key_src": "/x.key",
            "cache_server_tls_ca_src": "/ca.crt",
            # ElastiCache's third engine, which Debian's archive does not have.
            "cache_server_engine": "memcached",
        },
        "cache_server_engine",
    ),
    ("app", {"cachestack_db_host": "db", "cachestack_cache_host": "cache"}, "app_db_password"),
    (
        "app",
        {
            "cachestack_db_host": "db",
            "cachestack_cache_host": "cache",
            "cachestack_db_password": SECRET,
            "app_cache_ttl": "soon",
        },
        "app_cache_ttl",
    ),
    (
        "app",
        {
            "cachestack_db_host": "db",
            "cachestack_cache_host": "cache",
            "cachestack_db_password": SECRET,
            "app_db_sslmode": "prefer",
            "app_db_ca_file": str(ROOT / "README.md"),  # a file that exists
        },
        "app_db_ca_file is set but app_db_sslmode prefer",
    ),
    (
        "app",
        {
            "cachestack_db_host": "db",
            "cachestack_cache_host": "cache",
            "cachestack_db_password": SECRET,
            "app_db_statement_timeout": 0.0004,
        },
        "app_db_statement_timeout",
    ),
    (
        "app",
        {
            "cachestack_db_host": "db",
            "cachestack_cache_host": "cache",
            "cachestack_db_password": SECRET,
            "app_cache_ttl": 10**16,
        },
        "app_cache_ttl must be at most",
    ),
    (
        "app",
        {
            "cachestack_db_host": "db",
            "cachestack_cache_host": "cache",
            "cachestack_db_password": SECRET,
            "app_db_statement_timeout": 60,  # a cold page may wait 3 + 60 + 4 s for the lock
            "app_gunicorn_timeout": 60,
        },
        "app_gunicorn_timeout must exceed the cache lock wait (67.0 s)",
    ),
    (
        "app",
        {
            "cachestack_db_host": "db",
            "cachestack_cache_host": "cache",
            "cachestack_db_password": SECRET,
            "app_cache_lock_timeout": -1,
        },
        "app_cache_lock_timeout 0 or more",
    ),
    ("nginx", {"nginx_listen_port": "eighty"}, "nginx_listen_port"),
    ("nginx", {"nginx_listen_port": 70000}, "nginx_listen_port"),
    ("tls_ca", {"tls_ca_certificates": [{"name": "x"}]}, "subject_alt_names"),
]
RECAP = re.compile(r"localhost\s+: ok=\d+\s+changed=(\d+)")


def run_role(
    tmp_path: Path, role: str, variables: dict, *options: str, tasks_from: str = "main"
) -> subprocess.CompletedProcess:
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(variables))
    extra.chmod(0o600)
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.include_role:\n        name: cachestack.aws.{role}\n"
        f"        tasks_from: {tasks_from}\n"
    )
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
    }
    return subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-e",
            f"@{extra}",
            *options,
            str(playbook),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
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
    ("cache", {"cache_auth_token": SECRET, "cache_replicas_per_node_group": "2"}),
    ("postgresql_server", {"postgresql_server_port": "5433"}),
    (
        "cache_server",
        {
            "cache_server_shards": "2",
            "cache_server_replicas_per_shard": "1",
            "cache_server_port": "7000",
            "cache_server_maxmemory_mb": "64",
        },
    ),
    ("web_instance", {"web_instance_metadata_hop_limit": "3"}),
]
REQUIRED = {
    "postgresql_server": {
        "postgresql_server_db_password": SECRET,
        "postgresql_server_tls_cert_src": "/x.crt",
        "postgresql_server_tls_key_src": "/x.key",
        "postgresql_server_allowed_clients": ["10.0.1.0/24"],
    },
    "cache_server": {
        "cache_server_auth_token": SECRET,
        "cache_server_tls_cert_src": "/x.crt",
        "cache_server_tls_key_src": "/x.key",
        "cache_server_tls_ca_src": "/ca.crt",
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
