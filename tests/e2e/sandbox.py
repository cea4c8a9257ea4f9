"""Helpers for the end-to-end tests: run playbooks against the sandbox, read play
recaps, run commands inside the containers, and request pages from 127.0.0.1:8080."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PAGE_URL = "http://127.0.0.1:8080/"
SECRETS_DIR = Path.home() / ".cachestack" / "sandbox"
# The app's cached value (roles/web_app/files/cachestack_app/cache.py).
CACHE_KEY = "cachestack:{slow_version}:v2"
CONTAINERS = ("cachestack-web", "cachestack-db", "cachestack-cache")
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@dataclass
class PlaybookRun:
    returncode: int
    output: str
    seconds: float

    def recap(self) -> dict[str, dict[str, int]]:
        return {
            m[1]: {
                "ok": int(m[2]),
                "changed": int(m[3]),
                "unreachable": int(m[4]),
                "failed": int(m[5]),
            }
            for m in RECAP.finditer(self.output)
        }

    def changed_tasks(self, host: str) -> list[str]:
        """Names of the tasks that reported changed on a host (in check mode: would change)."""
        changed, task = [], ""
        for line in self.output.splitlines():
            if line.startswith("TASK ["):
                task = line[len("TASK [") : line.rindex("]")]
            elif line.startswith(f"changed: [{host}]"):
                changed.append(task)
        return changed

    def changed_hosts(self) -> dict[str, int]:
        return {h: r["changed"] for h, r in self.recap().items() if r["changed"]}

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def ansible_playbook(*args: str, timeout: int = 1500) -> PlaybookRun:
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    }
    started = time.monotonic()
    done = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return PlaybookRun(done.returncode, done.stdout + done.stderr, time.monotonic() - started)


def in_container(
    container: str, *argv: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """docker exec; env values travel in docker's own environment, not on a command line."""
    names = [arg for name in (env or {}) for arg in ("-e", name)]
    return subprocess.run(
        ["docker", "exec", *names, container, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
        env={**os.environ, **(env or {})},
    )


@dataclass
class Page:
    status: int
    headers: dict[str, str]
    body: str
    seconds: float


def get(url: str = PAGE_URL, timeout: float = 30) -> Page:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
            body = response.read().decode()
            status, headers = response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        body, status, headers = error.read().decode(), error.code, dict(error.headers)
    return Page(status, headers, body, time.monotonic() - started)


def wait_for(predicate, seconds: float, interval: float = 0.5):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (OSError, urllib.error.URLError) as error:
            last = error
        time.sleep(interval)
    raise AssertionError(f"not true within {seconds} s (last: {last!r})")


def docker(*argv: str) -> str:
    """A docker command's output; a failure raises with its stderr."""
    return subprocess.run(["docker", *argv], capture_output=True, text=True, check=True).stdout


def container_id(name: str) -> str:
    return docker("inspect", "-f", "{{.Id}}", name).strip()


def existing_containers() -> list[str]:
    listing = docker("ps", "-a", "--format", "{{.Names}}")
    return [n for n in listing.split() if n in CONTAINERS]


def secret(name: str) -> str:
    """A secret the sandbox generated (db_password, cache_auth_token)."""
    return (SECRETS_DIR / name).read_text().strip()


def redis_cli(port: str, *command: str) -> str:
    """redis-cli on one node of the cache container, following the cluster's redirects;
    the token passed in the environment."""
    return in_container(
        "cachestack-cache",
        "valkey-cli",
        "-c",
        "--tls",
        "--cacert",
        "/etc/valkey/tls/ca.crt",
        "-h",
        "127.0.0.1",
        "-p",
        port,
        *command,
        env={"REDISCLI_AUTH": secret("cache_auth_token")},
    ).stdout


def forget_page() -> None:
    """Delete the cached page once no refresh holds its lock: a stale or early refresh the
    app runs in the background (up to the slow query's 5 s) would otherwise write the page
    back right after the delete, and the next visit would be a HIT, not the MISS expected."""
    wait_for(lambda: redis_cli("6379", "EXISTS", CACHE_KEY + ":lock").strip() == "0", 60)
    redis_cli("6379", "DEL", CACHE_KEY)


def psql_argv(sql: str) -> list[str]:
    """psql as the superuser in the database container, on the app's database."""
    return ["su", "postgres", "-c", f"psql -d cachestack -tAc {shlex.quote(sql)}"]


class RequestLoop:
    """Requests the page from 127.0.0.1:8080 in a thread until stopped, at most
    ``max_requests`` times and ``max_seconds`` long, a pause between requests. A request
    that raises (refused, reset, timed out) or answers 5xx is a failure."""

    def __init__(
        self, max_requests: int = 3000, max_seconds: float = 900, pause: float = 0.1
    ) -> None:
        import threading

        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.pause = pause
        self.statuses: dict[int, int] = {}
        self.cache: dict[str, int] = {}
        self.failures: list[str] = []
        self.served = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while (
            not self._stop.is_set()
            and self.served + len(self.failures) < self.max_requests
            and time.monotonic() < deadline
        ):
            try:
                page = get(timeout=30)
            except OSError as error:
                self.failures.append(repr(error))
            else:
                self.statuses[page.status] = self.statuses.get(page.status, 0) + 1
                label = page.headers.get("X-Cache", "-")
                self.cache[label] = self.cache.get(label, 0) + 1
                if page.status >= 500:
                    self.failures.append(f"{page.status}: {page.body[:200]}")
                else:
                    self.served += 1
            time.sleep(self.pause)

    def __enter__(self) -> RequestLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def summary(self) -> str:
        return f"served {self.served}, statuses {self.statuses}, X-Cache {self.cache}"


def cluster_nodes(port: str = "6379") -> list[dict[str, str]]:
    """CLUSTER NODES of the cache node on ``port``: id, port, flags, primary, slots."""
    nodes = []
    for line in redis_cli(port, "CLUSTER", "NODES").splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        nodes.append(
            {
                "id": fields[0],
                "port": fields[1].split("@")[0].rsplit(":", 1)[1],
                "flags": fields[2],
                "primary": fields[3],
                "slots": " ".join(f for f in fields[8:] if not f.startswith("[")),
            }
        )
    return nodes


def cluster_info(port: str = "6379") -> dict[str, str]:
    return dict(
        line.strip().split(":", 1)
        for line in redis_cli(port, "CLUSTER", "INFO").splitlines()
        if ":" in line
    )


def cache_units() -> list[str]:
    """The cache node units that are active, by port."""
    listed = in_container(
        "cachestack-cache",
        "systemctl",
        "list-units",
        "--plain",
        "--no-legend",
        "--state=active",
        "valkey-server@*",
    ).stdout
    return sorted(
        line.split()[0].split("@")[1].split(".")[0] for line in listed.splitlines() if line.strip()
    )


# The web fleet (cachestack_web_count of 2 or more): cachestack-web-2, ... and the balancer.
BALANCER = "cachestack-lb"
FLEET_CONTAINER = re.compile(r"^cachestack-web-[0-9]+$|^cachestack-lb$")


def fleet_containers() -> list[str]:
    """The containers only a fleet has (the extra web containers and the balancer)."""
    listing = docker("ps", "-a", "--format", "{{.Names}}")
    return sorted(n for n in listing.split() if FLEET_CONTAINER.match(n))


def haproxy_servers() -> dict[str, dict[str, str]]:
    """The balancer's servers as its runtime API reports them (show stat): status, scur, ..."""
    api = "unix-connect:/run/haproxy/admin.sock"
    command = f"echo 'show stat web 4 -1' | socat stdio {api}"
    out = in_container(BALANCER, "sh", "-c", command).stdout
    lines = out.splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
    return {row["svname"]: row for row in rows if row.get("svname") not in ("BACKEND", "FRONTEND")}
