"""The web_app role's variables and templates rendered as Ansible renders them (its own
Templar and filters), from the role's files: tests compare against what the role deploys,
never against a copy of its defaults or formulas."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROLE = Path(__file__).resolve().parents[3] / "roles" / "web_app"

# The endpoints contract (docs/architecture.md) with placeholder values: the role's
# defaults read it, and a test overrides what it needs.
CONTRACT: dict[str, Any] = {
    "cachestack_db_host": "db.invalid",
    "cachestack_db_password": "placeholder",
    "cachestack_cache_host": "cache.invalid",
}

# app.ini names its secrets' files (password_file) in web_app_config_dir, and the app's
# parser reads them: the rendered app.ini gets a folder that holds them.
CONFIG_DIR = Path(tempfile.mkdtemp(prefix="web-app-role-"))
atexit.register(shutil.rmtree, CONFIG_DIR, ignore_errors=True)
for _secret in ("db-password", "cache-auth-token"):
    (CONFIG_DIR / _secret).write_text("placeholder\n")


def role_vars(**overrides: Any) -> dict[str, Any]:
    """The role's variables with Ansible's precedence: its defaults, then the contract and
    ``overrides`` (inventory), then its vars/main.yml (role vars beat inventory)."""
    loader = DataLoader()
    defaults = loader.load_from_file(str(ROLE / "defaults" / "main.yml"), trusted_as_template=True)
    internal = loader.load_from_file(str(ROLE / "vars" / "main.yml"), trusted_as_template=True)
    return {
        **defaults,
        **CONTRACT,
        "web_app_config_dir": str(CONFIG_DIR),
        "role_path": str(ROLE),
        "ansible_managed": "Ansible managed",
        **overrides,
        **internal,
    }


def _templar(**overrides: Any) -> Templar:
    return Templar(loader=DataLoader(), variables=role_vars(**overrides))


def render_var(name: str, **overrides: Any) -> Any:
    """One of the role's variables, templated as a task would see it."""
    return _templar(**overrides).template(trust_as_template("{{ " + name + " }}"))


def render_template(name: str, **overrides: Any) -> str:
    """roles/web_app/templates/<name> as the template module renders it (trim_blocks)."""
    text = trust_as_template((ROLE / "templates" / name).read_text())
    return _templar(**overrides).template(
        text, escape_backslashes=False, overrides={"trim_blocks": True}
    )
