"""Lint, sanity and packaging of the collection, as pytest tests so that the README's
one test command ends with one pytest summary line.

Each test runs the real tool on the working tree and fails with the tool's own output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
GET_PIP_STAND_IN = ROOT / "scripts" / "ansible-test-offline-get-pip.py"
# Where ansible-test 2.19 looks for the get-pip script of the pip version it bootstraps
# its sanity virtualenvs with, under the HOME it is given.
GET_PIP_CACHE = Path(".ansible/test/cache/get_pip_24_2.py")
# Collections our modules' docs and imports name; ansible-test finds them only as
# siblings under the same ansible_collections folder.
DEPENDENCIES = ("amazon/aws", "community/aws", "community/docker", "community/postgresql")


def run(
    *argv: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: int = 900
) -> subprocess.CompletedProcess:
    """Run a tool to completion (its output captured); the packaging and ansible-test
    targets tests run theirs with it too."""
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_clean(result: subprocess.CompletedProcess) -> None:
    """The tool exited 0; else fail with its command and the ends of its output."""
    output = f"{result.stdout[-20000:]}\n{result.stderr[-6000:]}"
    assert result.returncode == 0, f"{result.args} failed ({result.returncode}):\n{output}"


def tracked_files() -> list[str]:
    listing = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    assert_clean(listing)
    return [f for f in listing.stdout.split("\0") if f and (ROOT / f).exists()]


def bundled_collections() -> Path:
    """The ansible_collections folder of the `ansible` package (amazon.aws and the rest)."""
    import ansible_collections.amazon.aws as amazon_aws

    return Path(amazon_aws.__path__[0]).parents[1]


def copy_collection(tmp: Path, dependencies: tuple[str, ...], skip: tuple[str, ...] = ()) -> Path:
    """A copy of the tracked files (but those starting with one of ``skip``) at
    <tmp>/ansible_collections/cachestack/aws, where ansible-test wants the collection (it
    resolves symlinks, so not a link to the checkout), with the ``dependencies`` (such as
    "amazon/aws") linked beside it from :func:`bundled_collections`."""
    collections = tmp / "ansible_collections"
    copy = collections / "cachestack" / "aws"
    for name in tracked_files():
        if name.startswith(skip):
            continue
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target, follow_symlinks=False)
    for dep in dependencies:
        (collections / dep).parent.mkdir(parents=True, exist_ok=True)
        (collections / dep).symlink_to(bundled_collections() / dep)
    return copy


def test_yamllint() -> None:
    assert_clean(run(VENV_BIN / "yamllint", "--strict", "."))


def test_ansible_lint_production_profile() -> None:
    result = run(VENV_BIN / "ansible-lint", "--profile", "production", "--nocolor")
    assert_clean(result)


def test_ruff_lint() -> None:
    assert_clean(run(VENV_BIN / "ruff", "check", "."))


def test_ruff_format() -> None:
    assert_clean(run(VENV_BIN / "ruff", "format", "--check", "."))


def test_changelog_fragments_lint() -> None:
    assert_clean(run(VENV_BIN / "antsibull-changelog", "lint"))


def test_galaxy_build_is_small_and_installs(tmp_path: Path) -> None:
    built = run(
        VENV_BIN / "ansible-galaxy", "collection", "build", "--output-path", tmp_path, "--force"
    )
    assert_clean(built)
    tarball = next(tmp_path.glob("cachestack-aws-*.tar.gz"))
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert not [n for n in names if n.startswith((".venv", ".collections", ".cache", ".git/"))]
    assert "plugins/modules/postgresql_migrate.py" in names
    assert "roles/web_app/files/cachestack_app/__init__.py" in names
    assert tarball.stat().st_size < 2 * 1024 * 1024, f"{tarball.stat().st_size} bytes"
    installed = run(
        VENV_BIN / "ansible-galaxy",
        "collection",
        "install",
        "--offline",
        "--no-deps",
        # The checkout itself is on the collections path: install anyway.
        "--force",
        "-p",
        tmp_path / "installed",
        tarball,
    )
    assert_clean(installed)
    assert (tmp_path / "installed/ansible_collections/cachestack/aws/MANIFEST.json").is_file()


def test_ansible_test_sanity(tmp_path: Path) -> None:
    copy = copy_collection(tmp_path, DEPENDENCIES)
    # The offline get-pip stand-in goes into a HOME of the test's own, not the user's
    # ~/.ansible, where it would replace a real cached copy.
    home = tmp_path / "home"
    (home / GET_PIP_CACHE).parent.mkdir(parents=True)
    shutil.copyfile(GET_PIP_STAND_IN, home / GET_PIP_CACHE)
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(tmp_path), "HOME": str(home)}
    result = run(
        *(VENV_BIN / "ansible-test", "sanity", "--local", "--python", "3.11", "--color", "no"),
        cwd=copy,
        env=env,
        timeout=1800,
    )
    assert_clean(result)
    assert not (copy / "tests/sanity").exists(), "sanity must pass without ignore files"


@pytest.mark.parametrize("playbook", ["site.yml", "playbooks/teardown.yml"])
def test_playbooks_parse(playbook: str) -> None:
    assert_clean(run(VENV_BIN / "ansible-playbook", "--syntax-check", playbook))


def test_no_file_cites_a_document_outside_the_repository() -> None:
    # The repository explains itself: the architecture and the contract are in
    # docs/architecture.md, not in design notes that never shipped with it.
    # The names are put together here, or this file would cite them.
    outside = tuple(f"{name}.md" for name in ("DESIGN", "STYLE"))
    citing = [
        f"{name}: {doc}"
        for name in tracked_files()
        if (ROOT / name).is_file() and not name.startswith("changelogs/")
        for doc in outside
        if doc in (ROOT / name).read_text(errors="replace")
    ]
    assert citing == [], citing


def test_every_version_added_is_a_released_or_the_coming_version() -> None:
    # A module's version_added past galaxy.yml's version tells users a release that does
    # not exist yet; ansible-test compares it only against a base branch.
    galaxy = (ROOT / "galaxy.yml").read_text()
    current = re.search(r"^version: *([0-9.]+)", galaxy, re.MULTILINE)[1]

    def key(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in version.split("."))

    later = [
        f"{path.relative_to(ROOT)}: {found}"
        for path in sorted((ROOT / "plugins").rglob("*.py"))
        for found in re.findall(r"version_added: *['\"]?([0-9.]+)", path.read_text())
        if key(found) > key(current)
    ]
    assert later == [], f"galaxy.yml says {current}: {later}"
