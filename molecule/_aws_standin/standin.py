"""Start or stop the AWS stand-in for a molecule scenario of an AWS role.

    python standin.py start DIR   # writes DIR/standin.url and DIR/standin.pid
    python standin.py stop DIR    # stops the server DIR/standin.pid names, if it runs

The stand-in is the AWS playbook tests' server (tests/integration/aws/moto_compat.py: moto
with AWS's lifecycle states and refusals), started by tests/servers/moto.py's start_moto on
a free 127.0.0.1 port. Every state (creating, modifying, deleting, pending...) lasts one
second instead of minutes, so a scenario waits through each state without waiting long.
The server outlives this script: molecule's create step starts it, its destroy step stops it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.servers.moto import start_moto  # noqa: E402 (needs the repository on sys.path)

COMPAT = ROOT / "tests" / "integration" / "aws" / "moto_compat.py"
# standin_lifecycle.py's and standin_secrets.py's durations, in seconds.
DURATIONS = {
    f"STANDIN_{name}_SECONDS": "1"
    for name in (
        "CACHE_CREATE",
        "CACHE_MODIFY",
        "CACHE_DELETE",
        "DB_CREATE",
        "DB_BACKUP",
        "DB_DELETE",
        "NAT_CREATE",
        "NAT_DELETE",
        "ENI_LINGER",
        "SECRET_PURGE",
    )
}
STOP_TIMEOUT = 10.0


def start(directory: Path) -> None:
    """Start the stand-in and record its URL and process id in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    # A session of its own: whatever signals the group of the Ansible run that started it
    # does not reach the server, which must outlive that run.
    with contextlib.suppress(PermissionError):  # already a group leader: it has its own
        os.setsid()
    process, url = start_moto(
        command=[sys.executable, str(COMPAT)], env={**os.environ, **DURATIONS}
    )
    (directory / "standin.pid").write_text(f"{process.pid}\n")
    (directory / "standin.url").write_text(f"{url}\n")
    print(url)


def _is_standin(pid: int) -> bool:
    """Whether ``pid`` is still a stand-in server (and not a process that reused its id)."""
    try:
        return COMPAT.name.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def stop(directory: Path) -> None:
    """Stop the stand-in ``directory`` records, if it still runs, and forget it."""
    pid_file = directory / "standin.pid"
    if pid_file.is_file():
        pid = int(pid_file.read_text())
        if _is_standin(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            while _is_standin(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _is_standin(pid):
                os.kill(pid, signal.SIGKILL)
            print(f"stopped {pid}")
    for name in ("standin.pid", "standin.url"):
        (directory / name).unlink(missing_ok=True)


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit(__doc__)
    directory = Path(sys.argv[2])
    if sys.argv[1] == "start":
        start(directory)
    else:
        stop(directory)


if __name__ == "__main__":
    main()
