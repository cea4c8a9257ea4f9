"""A moto server for the AWS playbook tests, started through ``moto_compat.py``.

The server is ``tests/servers/moto.py``'s (same helpers: free port, fake credentials, reset,
stop), started through the wrapper beside this file, which lines four moto behaviours up
with AWS (see its docstring). One server serves the whole module: the tests run in order
and share the stack they build.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers.moto import reset_moto, start_moto, stop_moto

COMPAT = Path(__file__).with_name("moto_compat.py")


@contextmanager
def running_standin() -> Iterator[str]:
    """A fresh moto server (with the AWS-compatibility wrapper) on a free loopback port."""
    process, url = start_moto(command=[sys.executable, str(COMPAT)])
    try:
        reset_moto(url)
        yield url
    finally:
        stop_moto(process)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """The stand-in of running_standin, for one test module."""
    with running_standin() as url:
        yield url
