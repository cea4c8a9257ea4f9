"""The app role's gunicorn worker class (roles/web_app/files/gthread_fair.py) under the role's
gunicorn config and defaults: new connections are shared between workers, and idle
kept-alive connections never stop a worker accepting."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.integration.app.conftest import APP_DIR, GUNICORN, Gunicorn, write_ini
from tests.unit.app.web_app_role import render_template

# A WSGI app answering with its worker's pid, after ?sleep=SECONDS.
TEST_APP = """
import os, time
from urllib.parse import parse_qs

def app(environ, start_response):
    time.sleep(float(parse_qs(environ["QUERY_STRING"]).get("sleep", ["0"])[0]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""

# Appended to the role's rendered config: each worker leaves a file when it is about to
# serve, so a test starts when all are. Nothing of the role's is overridden.
READY_HOOK = """

def post_worker_init(worker):
    import pathlib

    (pathlib.Path({ready!r}) / str(worker.pid)).touch()
"""


class Server:
    """The role's gunicorn.conf.py (its template and defaults: gthread_fair.ThreadWorker,
    workers from the CPU count, its threads and keepalive, no preload), the bind port the
    test's, serving the pid app instead of cachestack_app. The master checks the role's
    app.ini (rendered with placeholder endpoints) first, as on a host."""

    def __init__(self, workdir: Path) -> None:
        self.ready = workdir / "ready"
        self.ready.mkdir(parents=True)
        (workdir / "pid_app.py").write_text(TEST_APP)
        gunicorn = Gunicorn(write_ini(workdir, render_template("app.ini.j2")), workdir)
        self.port = gunicorn.port
        self.settings = gunicorn.settings()  # writes the rendered config
        self.workers = self.settings["workers"]
        # gthread_fair stops accepting at twice its threads busy.
        self.max_busy = 2 * self.settings["threads"]
        gunicorn.conf_path.write_text(
            gunicorn.conf_path.read_text() + READY_HOOK.format(ready=str(self.ready))
        )
        self.process = subprocess.Popen(
            [GUNICORN, "-c", str(gunicorn.conf_path), "pid_app:app"],
            cwd=APP_DIR,  # the role's code folder: gthread_fair.py and check_config.py
            env={**gunicorn.env(), "PYTHONPATH": str(workdir)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 20
        while len(list(self.ready.iterdir())) < self.workers:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gunicorn did not start its workers: {self.output}")
            time.sleep(0.05)

    def worker_pids(self) -> set[int]:
        return {int(path.name) for path in self.ready.iterdir()}

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
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[Server] = []

    def factory() -> Server:
        started.append(Server(tmp_path / str(len(started))))
        return started[-1]

    yield factory
    for server in started:
        server.stop()
        assert server.process.returncode == 0, server.output


def test_a_burst_of_new_connections_is_shared_between_workers(serve):
    # As many slow requests at once as all workers have room for (twice their threads
    # each): each worker takes exactly its share. gunicorn's own gthread often lets one
    # worker take most of them and answer them in turn while another idles.
    server = serve()
    assert server.workers >= 2
    burst = server.workers * server.max_busy
    with ThreadPoolExecutor(max_workers=burst) as pool:
        pids = list(
            pool.map(lambda _request: server.pid_for(server.connect(), sleep=1.5), range(burst))
        )
    assert set(pids) == server.worker_pids()
    assert sorted(Counter(pids).values()) == [server.max_busy] * server.workers, pids


def test_idle_kept_alive_connections_do_not_stop_a_worker_accepting(serve):
    # nginx keeps its upstream connections open between requests. gunicorn's own
    # worker_connections cap counts them, so a worker holding that many idle ones accepts
    # nothing new until they close; the busy-connection limit must not count them. More
    # idle connections than all workers have room for busy ones: were they counted, the
    # last would never be accepted.
    server = serve()
    idle = [server.connect() for _connection in range(server.workers * server.max_busy + 2)]
    for connection in idle:
        connection.timeout = 5
        server.pid_for(connection)  # one request each, then the connection idles, kept alive
    fresh = server.connect()
    fresh.timeout = 5
    assert server.pid_for(fresh) in server.worker_pids()
    assert server.pid_for(idle[0]) in server.worker_pids()  # still kept alive, still served


def test_a_worker_whose_master_died_accepts_nothing_new(tmp_path):
    # The worker finishes the request it holds and exits; new connections are not its (or
    # any other orphaned worker's) to take.
    server = Server(tmp_path / "orphan")
    workers = server.worker_pids()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            slow = pool.submit(server.pid_for, server.connect(), 3)
            time.sleep(0.5)  # the slow request is running
            server.process.kill()
            server.process.wait()
            time.sleep(1.5)  # a worker checks its parent after each wait of 1 s at most
            fresh = server.connect()
            fresh.timeout = 1.5
            with pytest.raises(OSError):  # never accepted: a timeout, or a reset at exit
                server.pid_for(fresh)
            assert slow.result() in workers
        deadline = time.monotonic() + 10
        while any(os.path.exists(f"/proc/{pid}") for pid in workers):
            assert time.monotonic() < deadline, "an orphaned worker did not exit"
            time.sleep(0.1)
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
