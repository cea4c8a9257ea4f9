"""The container run options that boot systemd on this kind of host are stated in
roles/sandbox_hosts/vars/main.yml for the sandbox, and again in molecule/config.yml,
because molecule's config is literal YAML that cannot read a role's vars. This keeps the
second copy equal to the first, so the roles are tested in the containers they run in."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_molecule_boots_its_containers_as_the_sandbox_does() -> None:
    role = yaml.safe_load((ROOT / "roles/sandbox_hosts/vars/main.yml").read_text())
    (platform,) = yaml.safe_load((ROOT / "molecule/config.yml").read_text())["platforms"]
    assert platform["capabilities"] == role["__sandbox_hosts_capabilities"]
    assert platform["security_opts"] == role["__sandbox_hosts_security_opts"]
    assert platform["tmpfs"] == role["__sandbox_hosts_tmpfs"]
