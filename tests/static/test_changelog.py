"""Changelog fragments: one per change in changelogs/fragments/, checked by
``antsibull-changelog lint`` (tests/static/test_collection.py runs it on the checkout).

The lint reads only .yml and .yaml files there (changelogs/config.yaml says
ignore_other_fragment_extensions): a fragment saved under another name would be left out of
the changelog without a word, so this file checks the names, and that the lint, with this
project's config, refuses what a fragment must not be (bad YAML, an unknown section, a
section that is not a list).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).parent / "antsibull-changelog"
FRAGMENTS = ROOT / "changelogs" / "fragments"


def lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT), "lint"], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_config_names_the_sections_fragments_use() -> None:
    config = yaml.safe_load((ROOT / "changelogs" / "config.yaml").read_text())
    sections = {name for name, _title in config["sections"]}
    assert {"minor_changes", "bugfixes", "security_fixes", "breaking_changes"} <= sections
    assert config["trivial_section_name"] == "trivial"
    assert config["notesdir"] == "fragments"


def test_every_fragment_is_a_yaml_file_the_lint_reads() -> None:
    read = {".yml", ".yaml"}
    others = sorted(p.name for p in FRAGMENTS.iterdir() if p.suffix not in read)
    assert others == [], f"not read by antsibull-changelog (name them .yml): {others}"


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("bugfix:\n  - A section that does not exist.\n", "invalid section: bugfix"),
        ("bugfixes:\n  - [unclosed\n", "yaml parsing error"),
        ("bugfixes: One string, not a list.\n", 'section "bugfixes" must be type list'),
        ("", "file must be a mapping"),
    ],
)
def test_lint_refuses_a_bad_fragment(tmp_path: Path, content: str, complaint: str) -> None:
    shutil.copytree(ROOT / "changelogs", tmp_path / "changelogs")
    shutil.copy2(ROOT / "galaxy.yml", tmp_path / "galaxy.yml")
    (tmp_path / "changelogs" / "fragments" / "bad.yml").write_text(content)
    result = lint(tmp_path)
    assert result.returncode != 0
    assert f"changelogs/fragments/bad.yml:0:0: {complaint}" in result.stdout + result.stderr
