"""The collection as a user gets it: built with ``ansible-galaxy collection build``,
installed with ``ansible-galaxy collection install`` into an empty collections path, and
run by FQCN (``ansible-playbook cachestack.aws.site``) from outside this checkout, with an
empty ansible.cfg (so not the checkout's: no .collections link, no roles_path, no Mitogen;
the default linear strategy).

What the run proves: the tarball holds what a user needs and nothing of the checkout's
tooling; playbooks resolve by FQCN; the stack's shared settings (group_vars/, reached
through the playbooks/group_vars link) survive build and install; and the whole site,
with the sandbox inventory shipped in the collection, plans (``--check``) a sandbox that
does not exist yet without an error. The plan runs the controller's provisioning for real
in check mode (docker lookups, the port check, the secrets and the private CA planned); the
plays of the db, cache and web hosts are loaded and parsed but find no host, since the
containers are only planned. It runs under container, network and port names of its own
and a HOME of its own, so the end-to-end tests' sandbox (cachestack-web/db/cache,
127.0.0.1:8080, ~/.cachestack) is never touched.
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.moto import free_port
from tests.static.test_collection import assert_clean, bundled_collections, run

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
GALAXY_INSTALL = [VENV_BIN / "ansible-galaxy", "collection", "install", "--offline", "--no-deps"]
# The sandbox planned under names of its own, beside any real one.
NAMES = {
    "sandbox_hosts_network_name": "cachestack-pkgtest",
    "sandbox_hosts_web_container": "cachestack-pkgtest-web",
    "sandbox_hosts_db_container": "cachestack-pkgtest-db",
    "sandbox_hosts_cache_container": "cachestack-pkgtest-cache",
}


@dataclass
class Installed:
    tarball: Path
    names: list[str]
    path: Path  # the collections path (holds ansible_collections/)
    collection: Path  # .../ansible_collections/cachestack/aws
    env: dict[str, str]
    workdir: Path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    tmp = tmp_path_factory.mktemp("packaging")
    built = run(VENV_BIN / "ansible-galaxy", "collection", "build", "--output-path", tmp / "dist")
    assert_clean(built)
    [tarball] = list((tmp / "dist").glob("cachestack-aws-*.tar.gz"))
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    workdir = tmp / "elsewhere"
    home = tmp / "home"
    workdir.mkdir()
    home.mkdir()
    config = tmp / "ansible.cfg"
    config.write_text("")
    site_packages = bundled_collections().parent  # a collections path: holds ansible_collections
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(home),
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_COLLECTIONS_PATH": f"{tmp / 'collections'}{os.pathsep}{site_packages}",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    for name in list(env):
        if name.startswith("ANSIBLE_") and name not in {
            "ANSIBLE_CONFIG",
            "ANSIBLE_COLLECTIONS_PATH",
            "ANSIBLE_NOCOLOR",
            "ANSIBLE_FORCE_COLOR",
        }:
            del env[name]
    # Offline: the dependencies are the `ansible` package's bundled collections.
    install = run(*GALAXY_INSTALL, "-p", tmp / "collections", tarball, cwd=workdir, env=env)
    assert_clean(install)
    yield Installed(
        tarball=tarball,
        names=names,
        path=tmp / "collections",
        collection=tmp / "collections/ansible_collections/cachestack/aws",
        env=env,
        workdir=workdir,
    )


def test_tarball_ships_the_collection_and_not_the_checkouts_tooling(installed: Installed) -> None:
    names = set(installed.names)
    for needed in (
        "README.md",
        "LICENSE",
        "MANIFEST.json",
        "meta/runtime.yml",
        "docs/page.png",  # the README shows it
        "docs/architecture.md",
        "changelogs/changelog.yaml",
        "plugins/modules/elasticache_replication_group.py",
        "plugins/modules/postgresql_migrate.py",
        "roles/web_app/files/cachestack_app/__init__.py",
        "roles/sandbox_hosts/tasks/main.yml",
        "playbooks/site.yml",
        "playbooks/provision.yml",
        "playbooks/configure.yml",
        "playbooks/teardown.yml",
        "playbooks/group_vars",
        "group_vars/all/main.yml",
        # The example inventories, shipped on purpose: the sandbox's runs as it is.
        "inventory/sandbox/hosts.yml",
        "inventory/aws/hosts.yml",
        "inventory/aws/group_vars/all/main.yml",
    ):
        assert needed in names, f"{needed} is not in {installed.tarball.name}"
    unwanted = sorted(
        name
        for name in names
        if name in {"ansible.cfg", "requirements.txt", "requirements.yml", "pyproject.toml"}
        or name.split("/")[0]
        in {"scripts", "tests", "molecule", "bench", ".config", ".venv", ".collections"}
        or name.split("/")[0] in {".cache", ".git", ".ci", ".ansible-lint", ".yamllint"}
        or "__pycache__" in name.split("/")
        or name.endswith((".pyc", ".tar.gz"))
    )
    assert unwanted == []
    assert installed.tarball.stat().st_size < 1024 * 1024, installed.tarball.stat().st_size
    files = json.loads((installed.collection / "FILES.json").read_text())["files"]
    assert {f["name"] for f in files} >= {"docs/page.png", "playbooks/site.yml"}


def test_shared_settings_reach_the_playbooks_of_the_installed_collection(
    installed: Installed,
) -> None:
    link = installed.collection / "playbooks/group_vars"
    assert link.is_symlink(), "playbooks/group_vars should stay a link to ../group_vars"
    assert (link / "all/main.yml").is_file(), f"{link} does not lead to group_vars/all/main.yml"
    # Playbook-adjacent group_vars, as ansible-playbook cachestack.aws.site reads them, with
    # a user's inventory that has no group_vars of its own (the shipped ones link the same
    # file as group_vars/all/stack.yml).
    inventory = installed.workdir / "hosts.yml"
    inventory.write_text(
        "all:\n  children:\n    sandbox_controller:\n      hosts:\n        localhost:\n"
    )
    shown = run(
        *(VENV_BIN / "ansible-inventory", "--host", "localhost", "-i", inventory),
        *("--playbook-dir", installed.collection / "playbooks"),
        cwd=installed.workdir,
        env=installed.env,
    )
    assert_clean(shown)
    host_vars = json.loads(shown.stdout)
    assert host_vars.get("cachestack_stack_name") == "cachestack", host_vars
    assert host_vars.get("cachestack_cache_engine") == "valkey", host_vars
    # The example inventories link the same settings (for plays of hosts added at run time).
    for example in ("sandbox", "aws"):
        shared = installed.collection / f"inventory/{example}/group_vars/all/stack.yml"
        assert shared.resolve() == (installed.collection / "group_vars/all/main.yml").resolve()
        assert shared.is_file(), f"{shared} does not lead to group_vars/all/main.yml"


@pytest.mark.parametrize("playbook", ["site", "provision", "configure", "teardown"])
def test_playbooks_run_by_fqcn(installed: Installed, playbook: str) -> None:
    result = run(
        *(VENV_BIN / "ansible-playbook", "--syntax-check", f"cachestack.aws.{playbook}"),
        *("-i", installed.collection / "inventory/sandbox"),
        cwd=installed.workdir,
        env=installed.env,
    )
    assert_clean(result)


def docker_names(kind: str) -> set[str]:
    if kind == "network":
        listed = run("docker", "network", "ls", "--format", "{{.Name}}")
    else:
        listed = run("docker", "ps", "--all", "--format", "{{.Names}}")
    assert_clean(listed)
    return set(listed.stdout.split())


def test_site_plans_a_new_sandbox_from_the_installed_collection(installed: Installed) -> None:
    ours = set(NAMES.values())
    assert not ours & (docker_names("container") | docker_names("network")), (
        "a sandbox under this test's names is left over; remove it"
    )
    settings = {**NAMES, "sandbox_hosts_published_port": free_port()}
    result = run(
        *(VENV_BIN / "ansible-playbook", "cachestack.aws.site", "--check"),
        *("-i", installed.collection / "inventory/sandbox", "-e", json.dumps(settings)),
        cwd=installed.workdir,
        env=installed.env,
        timeout=300,
    )
    assert_clean(result)
    out = result.stdout
    # The installed copy ran, not this checkout, and without the checkout's Mitogen.
    assert f"{installed.collection}/roles/sandbox_hosts/tasks/present.yml" in out
    # (The virtualenv's own files may be named, in warnings: it lives in the checkout.)
    assert str(ROOT) not in (out + result.stderr).replace(str(VENV_BIN.parent), "")
    assert "mitogen" not in (out + result.stderr).lower()
    # The plan: the containers would be started, the secrets and the CA made, and every
    # play of site.yml was reached.
    assert "changed: [localhost] => (item=cachestack-pkgtest-web)" in out
    for play in (
        "Create the sandbox containers, secrets and certificates",
        "Configure the database and cache containers",
        "Configure the web hosts",
        "Check the page through nginx and say where to look",
        "Finish on AWS",
    ):
        assert f"PLAY [{play}" in out, play
    assert "failed=0" in out
    # A plan makes nothing.
    assert not ours & (docker_names("container") | docker_names("network"))
