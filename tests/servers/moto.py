"""A moto server on a free loopback port, for tests of the AWS layer.

Use it from a ``conftest.py`` by importing the fixture (pytest finds fixtures by name in
the conftest's namespace)::

    from tests.servers.moto import (  # noqa: F401  # pylint: disable=unused-import
        moto_server,
        reset_moto,
    )

    @pytest.fixture
    def aws(moto_server: str) -> Iterator[str]:
        reset_moto(moto_server)  # every test starts from an empty account
        yield moto_server

``moto_server`` is session-scoped: one ``moto_server`` process (``.venv/bin/moto_server``,
or the one beside the running Python) serves the whole test session on
``http://127.0.0.1:<free port>`` and is stopped at the end. ``reset_moto(url)`` empties it
(``POST /moto-api/reset``). ``aws_client(url, service)`` is a boto3 client on it.
``aws_env(url)`` gives the environment a subprocess such as ``ansible-playbook`` needs: fake
credentials, region us-east-1, ``AWS_URL`` for amazon.aws inventory plugins, and no profile
or config file from the user's home.

(The pylint comment keeps ``ansible-test sanity``'s pylint quiet about the fixture import,
which it cannot see is used by name.) A missing ``moto_server`` binary, or one that does not
answer in time, fails the test: it never skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers.container import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
FAKE_ACCESS_KEY = "testing"  # moto accepts any credentials
FAKE_SECRET_KEY = "testing"
REGION = "us-east-1"


def moto_server_binary() -> str:
    """Return the path of the ``moto_server`` script, or fail the test."""
    candidates = [
        REPO_ROOT / ".venv" / "bin" / "moto_server",
        Path(sys.executable).parent / "moto_server",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("moto_server")
    if found:
        return found
    pytest.fail("moto_server not found (install moto[server] into .venv: see requirements.txt)")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_moto(
    port: int | None = None,
    command: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``moto_server`` on 127.0.0.1 and wait until it answers; return (process, url).

    ``command`` replaces the ``moto_server`` binary with another argv that takes the same
    ``-H HOST -p PORT`` arguments (a wrapper script that patches moto, for example);
    ``env`` replaces the server's environment (the stand-in reads its durations there).
    """
    argv = command or [moto_server_binary()]
    last_output = b""
    for _attempt in range(3):  # a port taken between free_port() and bind: try another
        chosen = port or free_port()
        url = f"http://127.0.0.1:{chosen}"
        # moto logs every request on stderr: a file, not a pipe nobody reads, which
        # would fill and block the server.
        log = tempfile.TemporaryFile()  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(
            [*argv, "-H", "127.0.0.1", "-p", str(chosen)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            if _answers(url):
                return process, url
            time.sleep(0.1)
        stop_moto(process)
        log.seek(0)
        last_output = log.read()
        log.close()
        if port:
            break
    pytest.fail(
        f"moto_server did not answer within {START_TIMEOUT:.0f}s: "
        f"{last_output.decode(errors='replace')[-2000:]}"
    )


def stop_moto(process: subprocess.Popen[bytes]) -> None:
    """Stop a ``moto_server`` process started by ``start_moto``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def reset_moto(url: str) -> None:
    """Forget every resource the moto server holds (``POST /moto-api/reset``)."""
    request = urllib.request.Request(f"{url}/moto-api/reset", data=b"", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        if response.status != 200:
            pytest.fail(f"moto reset answered HTTP {response.status}")


def aws_env(url: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """Return an environment for a subprocess that talks to the moto server at ``url``."""
    env = dict(os.environ if base is None else base)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        env.pop(name, None)
    env.update(
        {
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_URL": url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    return env


def aws_client(url: str, service: str, keys: dict[str, str] | None = None) -> Any:
    """A boto3 client of ``service`` on the moto server at ``url``, with the fake
    credentials (or ``keys``' AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) in us-east-1."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=(keys or {}).get("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY),
        aws_secret_access_key=(keys or {}).get("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_KEY),
    )


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A ``moto_server`` on a free 127.0.0.1 port for the whole session; yields its URL."""
    process, url = start_moto()
    try:
        yield url
    finally:
        stop_moto(process)
