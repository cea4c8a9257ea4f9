"""Suite-wide settings.

scripts/test runs pytest with two xdist workers and --dist loadgroup. Tests that
share state run in order on one worker: each file is a group, and the end-to-end
files form one group because they share one sandbox. Molecule scenarios are
independent, so each is a group of its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        relative = Path(str(item.path)).relative_to(TESTS)
        if relative.parts[0] == "e2e":
            group = "e2e"
        elif relative.parts[0] == "molecule":
            group = item.nodeid
        else:
            group = str(relative)
        item.add_marker(pytest.mark.xdist_group(group))
