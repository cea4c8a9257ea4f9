"""The app role's gunicorn worker class (roles/web_app/files/gthread_fair.py): new connections
are shared between workers, and idle kept-alive connections never stop a worker accepting."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.app.conftest import APP_DIR, GUNICORN
from tests.servers.postgresql import free_port

# A WSGI app answering with its worker's pid, after ?sleep=SECONDS.
TEST_APP = """
import os, time
from urllib.parse import parse_qs

def app(environ, start_response):
    time.sleep(float(parse_qs(environ["QUERY_STRING"]).get("sleep", ["0"])[0]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""

# Each worker leaves a file when it is about to serve, so a test starts when all are.
CONFIG = """
import pathlib

def post_worker_init(worker):
    (pathlib.Path({ready!r}) / str(worker.pid)).touch()
"""


class Server:
    def __init__(self, workdir: Path, workers: int, threads: int) -> None:
        self.port = free_port()
        self.ready = workdir / "ready"
        self.ready.mkdir(parents=True)
        (workdir / "pid_app.py").write_text(TEST_APP)
        config = workdir / "gunicorn_test.conf.py"
        config.write_text(textwrap.dedent(CONFIG.format(ready=str(self.ready))))
        self.process = subprocess.Popen(
            [
                GUNICORN,
                "pid_app:app",
                "-c",
                str(config),
                "-k",
                "gthread_fair.ThreadWorker",
                "-w",
                str(workers),
                "--threads",
                str(threads),
                "--keep-alive",
                "60",
                "-b",
                f"127.0.0.1:{self.port}",
                "--no-control-socket",
            ],
            cwd=workdir,
            env={**os.environ, "PYTHONPATH": str(APP_DIR)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 20
        while len(list(self.ready.iterdir())) < workers:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gunicorn did not start its workers: {self.output}")
            time.sleep(0.05)

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def pid_for(self, connection: http.client.HTTPConnection, sleep: float = 0) -> int:
        connection.request("GET", f"/?sleep={sleep}")
        response = connection.getresponse()
        assert response.status == 200
        return int(response.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.output = self.process.communicate(timeout=30)[0]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[object]:
    started: list[Server] = []

    def factory(workers: int, threads: int) -> Server:
        started.append(Server(tmp_path / str(len(started)), workers, threads))
        return started[-1]

    yield factory
    for server in started:
        server.stop()
        assert server.process.returncode == 0, server.output


def test_a_burst_of_new_connections_is_shared_between_workers(serve):
    # One thread each, so a worker takes two busy connections at most (twice its threads).
    server = serve(workers=2, threads=1)
    with ThreadPoolExecutor(max_workers=4) as pool:
        pids = list(
            pool.map(lambda _request: server.pid_for(server.connect(), sleep=1.5), range(4))
        )
    # gunicorn's own gthread often lets one worker take all four and answer them in turn.
    assert sorted(Counter(pids).values()) == [2, 2], pids


def test_idle_kept_alive_connections_do_not_stop_a_worker_accepting(serve):
    # nginx keeps its upstream connections open between requests. gunicorn's own
    # worker_connections cap counts them, so a worker holding that many idle ones accepts
    # nothing new until they close; a busy-connection limit must not.
    server = serve(workers=1, threads=1)
    idle = [server.connect() for _connection in range(6)]
    for connection in idle:
        server.pid_for(connection)  # one request each, then the connection idles, kept alive
    fresh = server.connect()
    fresh.timeout = 5
    assert server.pid_for(fresh) == server.pid_for(idle[0])


def test_a_worker_whose_master_died_accepts_nothing_new(tmp_path):
    # It finishes the request it holds and exits; new connections are not its to take.
    server = Server(tmp_path / "orphan", workers=1, threads=2)
    worker = int(next(server.ready.iterdir()).name)
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            slow = pool.submit(server.pid_for, server.connect(), 3)
            time.sleep(0.5)  # the slow request is running
            server.process.kill()
            server.process.wait()
            time.sleep(1.5)  # the worker checks its parent after each wait of 1 s at most
            fresh = server.connect()
            fresh.timeout = 1.5
            with pytest.raises(OSError):  # never accepted: a timeout, or a reset at exit
                server.pid_for(fresh)
            assert slow.result() == worker
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{worker}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{worker}"), "the orphaned worker did not exit"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)
