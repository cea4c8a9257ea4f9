"""Run the tests' servers in containers of the ``cachestack-servers`` image.

The image (``scripts/build-servers-image``, which ``scripts/setup`` runs) holds the Debian 13
packages the product ships: PostgreSQL 17, Valkey 8.1 and Redis OSS 8.0. A server runs as
the container's command, in the foreground, with:

* ``--network host``: the server's own ``bind 127.0.0.1`` / ``listen_addresses`` keep it
  on the host's loopback only (nothing is published elsewhere), and cluster nodes reach
  each other and announce 127.0.0.1;
* ``--rm``, a unique name ``cachestack-test-<pid>-<what>-<n>`` and a label carrying the
  host name and the pid of the test process: :func:`cleanup` (at exit, for every pytest
  process, xdist workers included) removes this process's containers, and the first
  container of a process removes those a killed run left behind;
* its temporary directory bind-mounted at the same path, so configuration, data and
  log paths are the same inside and out;
* a non-root uid:gid that owns that directory. One rule for both cases: the invoking
  user's own ids when the tests run as a normal user; when they run as root (as CI does;
  PostgreSQL refuses to run as root), the image's ``postgres`` ids, and :func:`own`
  chowns the directory to them before each start. A generated ``/etc/passwd`` and
  ``/etc/group`` naming that uid is mounted too (``initdb`` wants a user name for it).

Stopping is ``docker stop`` (or ``docker kill -s`` a given signal), killing is
``docker kill``, freezing is ``docker pause`` (the cgroup freezer: every process of the
server stops, the kernel still accepts connections on its port) and thawing ``docker
unpause``; starting again is a new ``docker run`` with the same command and directory.

docker runs through ``sudo -n`` only when the test process is not root and cannot use
the docker socket. A missing docker or image raises :class:`ContainerError` naming
``scripts/setup``: the servers' modules turn it into their own error, and tests fail,
never skip.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self

IMAGE = os.environ.get("CACHESTACK_SERVERS_IMAGE", "cachestack-servers:latest")
LABEL = "cachestack-test.owner"
OWNER = f"{socket.gethostname()}:{os.getpid()}"
PREFIX = f"cachestack-test-{os.getpid()}"
SETUP_HINT = "run scripts/setup (it builds the image with scripts/build-servers-image)"

_counter = itertools.count(1)


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ContainerError(RuntimeError):
    """docker, the servers image or a container failed."""


@functools.cache
def docker_command() -> tuple[str, ...]:
    """``docker``, or ``sudo -n docker`` when not root and the socket is not ours to use."""
    if shutil.which("docker") is None:
        raise ContainerError(f"docker not found: {SETUP_HINT}")
    if os.geteuid() == 0 or os.environ.get("DOCKER_HOST"):
        return ("docker",)
    sock = "/var/run/docker.sock"
    if os.access(sock, os.R_OK | os.W_OK):
        return ("docker",)
    return ("sudo", "-n", "docker")


def docker(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one docker command; a failure (with check) raises :class:`ContainerError`."""
    cmd = [*docker_command(), *argv]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ContainerError(f"{' '.join(cmd[:4])}: {exc}") from exc
    if check and proc.returncode != 0:
        raise ContainerError(
            f"{' '.join(cmd[:4])} failed ({proc.returncode}): {proc.stderr.strip()}"
        )
    return proc


@functools.cache
def ensure_image() -> str:
    """The servers image's ID; checked once per process, which also sweeps the containers
    of dead test processes and registers :func:`cleanup` at exit."""
    proc = docker("image", "inspect", "-f", "{{.Id}}", IMAGE, check=False)
    if proc.returncode != 0:
        reason = proc.stderr.strip().splitlines()[-1:] or ["no answer"]
        raise ContainerError(f"image {IMAGE} not available ({reason[0]}): {SETUP_HINT}")
    _sweep_stale()
    atexit.register(cleanup)
    return proc.stdout.strip()


@functools.cache
def run_as() -> tuple[int, int]:
    """The uid:gid the servers run as: ours, or the image's postgres ids when we are root."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    ensure_image()
    ids = docker(
        "run", "--rm", "--network", "none", "--entrypoint", "sh", IMAGE,
        "-c", "id -u postgres; id -g postgres",
    ).stdout.split()  # fmt: skip
    return int(ids[0]), int(ids[1])


def own(path: Path) -> None:
    """Give a directory tree to the servers' uid:gid (only needed, and done, as root)."""
    if os.geteuid() != 0:
        return
    uid, gid = run_as()
    os.chown(path, uid, gid)
    for parent, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(parent, name), uid, gid, follow_symlinks=False)


def _identity_files(directory: Path) -> list[str]:
    """Write passwd and group files naming the servers' uid:gid; their mount options."""
    uid, gid = run_as()
    passwd, group = directory / ".passwd", directory / ".group"
    passwd.write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        f"cachestack:x:{uid}:{gid}:cachestack test server:{directory}:/usr/sbin/nologin\n"
    )
    group.write_text(f"root:x:0:\ncachestack:x:{gid}:\n")
    for path in (passwd, group):
        path.chmod(0o644)
    return ["-v", f"{passwd}:/etc/passwd:ro", "-v", f"{group}:/etc/group:ro"]


def _base_args(directory: Path, mounts: tuple[Path, ...]) -> list[str]:
    uid, gid = run_as()
    args = ["--rm", "--network", "host", "--user", f"{uid}:{gid}", "--label", f"{LABEL}={OWNER}"]
    for path in (directory, *mounts):
        args += ["-v", f"{path}:{path}"]
    return args + _identity_files(directory)


def run_once(
    directory: Path, argv: list[str], timeout: float = 120, what: str = "container"
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion in a container (initdb, say); raise on failure."""
    ensure_image()
    own(directory)
    name = f"{PREFIX}-{what}-{next(_counter)}"
    return docker(
        "run", "--name", name, *_base_args(directory, ()), "--entrypoint", argv[0], IMAGE,
        *argv[1:], timeout=timeout,
    )  # fmt: skip


@dataclass
class Container:
    """One server in a container; :meth:`start` again after a stop runs a new one."""

    what: str  # a short word for the container's name: "postgresql", "valkey", ...
    directory: Path  # mounted at the same path, owned by the container's uid
    argv: list[str]  # the command; argv[0] is the entrypoint
    stop_signal: str = "SIGTERM"  # what ``docker stop`` sends first
    mounts: tuple[Path, ...] = ()  # more directories to mount at the same path
    name: str | None = None
    paused: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def logfile(self) -> Path:
        """docker run's own output (the image's or the engine's complaints)."""
        return self.directory / ".container.log"

    def start(self) -> None:
        """``docker run`` in the background; the caller waits for the server's port."""
        ensure_image()
        if self.running():
            raise ContainerError(f"{self.name} is already running")
        own(self.directory)
        self.name = f"{PREFIX}-{self.what}-{next(_counter)}"
        cmd = [
            *docker_command(), "run", "--name", self.name,
            *_base_args(self.directory, self.mounts), "--stop-signal", self.stop_signal,
            "--entrypoint", self.argv[0], IMAGE, *self.argv[1:],
        ]  # fmt: skip
        with self.logfile.open("ab") as log:
            try:
                self.process = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log
                )
            except OSError as exc:
                raise ContainerError(f"docker run: {exc}: {SETUP_HINT}") from exc
        self.paused = False

    def running(self) -> bool:
        """Whether the container is still there (its ``docker run`` still waiting)."""
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        return self.logfile.read_text(errors="replace")[-chars:] if self.logfile.exists() else ""

    def _wait(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            docker("rm", "-f", str(self.name), check=False)
            self.process.wait(30)
        self.process = None

    def stop(self, timeout: float = 10, signum: str | None = None) -> None:
        """``docker stop -t timeout`` (its stop signal, then SIGKILL), or ``docker kill -s
        signum`` and a wait of at most ``timeout`` before SIGKILL; waits until it is gone."""
        if not self.running():
            self.process = None
            return
        self.unpause()
        if signum is None:
            docker(
                "stop", "-t", str(int(timeout)), str(self.name), check=False, timeout=timeout + 30
            )
            self._wait(30)
        else:
            docker("kill", "-s", signum, str(self.name), check=False)
            self._wait(timeout)

    def kill(self) -> None:
        """``docker kill``: SIGKILL, the server vanishes mid-run."""
        if self.running():
            docker("kill", str(self.name), check=False)
        self._wait(30)
        self.paused = False

    def pause(self) -> None:
        """``docker pause``: every process frozen, the port still accepts connections."""
        if self.running() and not self.paused:
            docker("pause", str(self.name))
            self.paused = True

    def unpause(self) -> None:
        if self.running() and self.paused:
            docker("unpause", str(self.name))
        self.paused = False

    def remove(self) -> None:
        """Remove the container whatever its state (destroy, cleanup)."""
        if self.process is not None and self.process.poll() is None:
            docker("rm", "-f", str(self.name), check=False)
            self._wait(30)
        self.process = None
        self.paused = False


class Destroyable:
    """A test server, or a set of them, used as ``with start_...() as server: yield server``
    in a fixture: :meth:`destroy` runs when the block ends, however it ends."""

    def destroy(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()


class ContainerServer(Destroyable):
    """What PostgreSQL and Valkey / Redis servers do alike with their :class:`Container`:
    start it and wait until a probe answers, kill, freeze, thaw and destroy it.

    A subclass is a dataclass with the fields ``basedir``, ``port`` and ``server``; it names
    itself (:attr:`label`), its error class (:attr:`error`), its own log file, the container
    it runs in (:meth:`new_container`) and one readiness probe (:meth:`ready`).
    """

    basedir: Path  # the server's temporary directory, mounted in its container
    port: int
    server: Container | None
    error: ClassVar[type[Exception]] = ContainerError

    @property
    def label(self) -> str:
        """The server's name in errors: "PostgreSQL", "valkey-server", ..."""
        raise NotImplementedError

    @property
    def logfile(self) -> Path:
        """The server's own log file."""
        raise NotImplementedError

    def new_container(self) -> Container:
        """The container the server runs in (made at the first start, kept afterwards)."""
        raise NotImplementedError

    def ready(self) -> bool:
        """One readiness probe: True, or False or an exception while it is not ready."""
        raise NotImplementedError

    def _start(self, timeout: float) -> None:
        """Start the container (again: a new one, same directory and port) and wait until
        :meth:`ready`."""
        if self.server is None:
            self.server = self.new_container()
        try:
            self.server.start()
        except ContainerError as exc:
            raise self.error(f"{self.label}: {exc}") from exc
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30) -> None:
        """Probe every 50 ms until :meth:`ready`; raise :attr:`error` with the logs' tails
        when the container exits or ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not self.is_running():
                last = RuntimeError("the server's container exited")
                break
            try:
                if self.ready():
                    return
            except Exception as exc:  # retried until the deadline
                last = exc
            time.sleep(0.05)
        log = self.logfile.read_text(errors="replace")[-3000:] if self.logfile.exists() else ""
        if self.server is not None:
            log += self.server.log_tail()
        raise self.error(f"{self.label} on port {self.port} not ready: {last}\n{log}")

    def is_running(self) -> bool:
        return self.server is not None and self.server.running()

    def kill(self) -> None:
        """``docker kill`` (SIGKILL): the server vanishes mid-run."""
        if self.server is not None:
            self.server.kill()

    def freeze(self) -> None:
        """``docker pause``: every server process stops (the cgroup freezer, as SIGSTOP to
        each); the kernel still accepts connections and acknowledges what clients send,
        but nothing answers (a hung server)."""
        if self.server is not None:
            self.server.pause()

    def thaw(self) -> None:
        """``docker unpause`` after :meth:`freeze`."""
        if self.server is not None:
            self.server.unpause()

    def destroy(self) -> None:
        """Remove the server's container (``docker rm -f``, frozen or not) and directory."""
        try:
            if self.server is not None:
                self.server.remove()
        finally:
            shutil.rmtree(self.basedir, ignore_errors=True)


def _owned_containers(owner: str | None) -> list[tuple[str, str]]:
    """(owner, name) of the test containers, all of them or one owner's."""
    label = f"{LABEL}={owner}" if owner else LABEL
    proc = docker(
        "ps", "-a", "--filter", f"label={label}",
        "--format", f'{{{{.Label "{LABEL}"}}}} {{{{.Names}}}}',
        check=False,
    )  # fmt: skip
    rows = (line.split() for line in proc.stdout.splitlines())
    return [(row[0], row[1]) for row in rows if len(row) == 2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale() -> None:
    """Remove containers that test processes of this host left behind when killed."""
    host = socket.gethostname()
    stale = []
    for owner, name in _owned_containers(None):
        owner_host, _sep, pid = owner.rpartition(":")
        if owner_host == host and pid.isdigit() and not _alive(int(pid)):
            stale.append(name)
    if stale:
        docker("rm", "-f", *stale, check=False)


def cleanup() -> None:
    """Remove every container this process started and left (registered at exit)."""
    with contextlib.suppress(ContainerError):
        names = [name for _owner, name in _owned_containers(OWNER)]
        if names:
            docker("rm", "-f", *names, check=False)
