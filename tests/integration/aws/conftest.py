"""A moto server for the AWS playbook tests, started through ``moto_compat.py``.

The server is ``tests/servers/moto.py``'s (same helpers: free port, fake credentials, reset,
stop), started through the wrapper beside this file, which lines four moto behaviours up
with AWS (see its docstring). One server serves the whole module: the tests run in order
and share the stack they build.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.moto import free_port, reset_moto, stop_moto

COMPAT = Path(__file__).with_name("moto_compat.py")
START_TIMEOUT = 30.0


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh moto server (with the AWS-compatibility wrapper) on a free loopback port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # A file, not a pipe: the server logs every request, and a full pipe would block it.
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, str(COMPAT), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_moto(process)
            pytest.fail(f"moto_compat did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    try:
        reset_moto(url)
        yield url
    finally:
        stop_moto(process)
