"""The app's requirements are a hashed lock, and the web_app role installs them with
pip --require-hashes.

roles/web_app/files/requirements.txt is compiled from requirements.in (pip-compile
--generate-hashes, see the .in's header): every package, dependencies included, pinned
with == and at least one sha256. A line without a hash, a loose pin or an unpinned
dependency would let pip take whatever file the index serves.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "roles" / "web_app" / "files"
LOCK = FILES / "requirements.txt"
SOURCE = FILES / "requirements.in"
INSTALL = ROOT / "roles" / "web_app" / "tasks" / "install.yml"

PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!-]+)$")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(path: Path) -> list[list[str]]:
    """Each requirement of a requirements file as its words, continuation lines joined
    and comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    entries = []
    for line in joined.splitlines():
        words = line.split("#", 1)[0].split() if not line.lstrip().startswith("#") else []
        if words:
            entries.append(words)
    return entries


def test_every_requirement_in_the_lock_is_pinned_and_hashed() -> None:
    entries = requirements(LOCK)
    assert entries, f"{LOCK} holds no requirement"
    names = []
    for words in entries:
        requirement, *options = words
        assert PIN.match(requirement), f"not pinned with ==: {' '.join(words)}"
        assert options, f"no --hash for {requirement}"
        bad = [option for option in options if not HASH.match(option)]
        assert not bad, f"{requirement}: not a sha256 --hash: {bad}"
        names.append(canonical(PIN.match(requirement)["name"]))
    assert len(names) == len(set(names)), f"a package pinned twice: {names}"


def test_the_lock_pins_what_requirements_in_asks_for() -> None:
    pins = (PIN.match(words[0]) for words in requirements(LOCK))
    locked = {canonical(pin["name"]): pin["version"] for pin in pins if pin}
    for words in requirements(SOURCE):
        wanted = PIN.match(words[0])
        assert wanted, f"{SOURCE.name}: pin each top-level requirement with ==: {' '.join(words)}"
        name = canonical(wanted["name"])
        assert locked.get(name) == wanted["version"], (
            f"{name}: {SOURCE.name} says {wanted['version']}, the lock {locked.get(name)}:"
            " compile the lock again"
        )


def test_the_role_installs_the_lock_with_require_hashes() -> None:
    tasks = yaml.safe_load(INSTALL.read_text())
    pips = [task for task in tasks if "ansible.builtin.pip" in task]
    assert len(pips) == 1, f"one pip task expected in {INSTALL}, found {len(pips)}"
    pip = pips[0]["ansible.builtin.pip"]
    # A real run (not check mode) installs the lock file with --require-hashes.
    real_run = "{{{{ omit if ansible_check_mode else {} }}}}"
    assert pip.get("extra_args") == real_run.format("'--require-hashes'"), pip
    assert pip.get("requirements") == real_run.format("web_app_base_dir ~ '/requirements.txt'"), pip
    # The file it reads is the role's lock, copied to the same path.
    copies = [
        task["ansible.builtin.copy"]
        for task in tasks
        if task.get("ansible.builtin.copy", {}).get("src") == "requirements.txt"
    ]
    assert len(copies) == 1, f"the lock is not copied to the host in {INSTALL}"
    assert copies[0]["dest"] == "{{ web_app_base_dir }}/requirements.txt"
