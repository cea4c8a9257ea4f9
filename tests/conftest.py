"""Suite-wide settings.

scripts/test runs pytest with two xdist workers and --dist loadgroup. Tests that
share state run in order on one worker: each file is a group, and the end-to-end
files form one group because they share one sandbox; molecule scenarios form one
because they share molecule's state folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def pytest_itemcollected(item: pytest.Item) -> None:
    # Marked as each test is collected: xdist reads the marks in its own
    # pytest_collection_modifyitems, which may run before this file's.
    relative = Path(str(item.path)).relative_to(TESTS)
    if relative.parts[0] == "e2e":
        group = "e2e"
    elif relative.parts[0] == "molecule":
        # Scenarios share molecule's state folder: one at a time.
        group = "molecule"
    else:
        group = str(relative)
    item.add_marker(pytest.mark.xdist_group(group))
