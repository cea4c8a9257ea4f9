"""The app role's gunicorn config (rendered from its template with the role's defaults by
Ansible's templar; only the bind port is the test's) serves the app with the role's worker
class and worker count, keeps query strings out of the access log, stops on a bad config,
and serves a new app.ini after a reload (HUP), as systemctl reload sends."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from tests.integration.app.conftest import APP_DIR, Gunicorn, get, ini, write_ini


def _run(server: Gunicorn) -> subprocess.Popen[str]:
    server.process = subprocess.Popen(
        server.command(),
        cwd=APP_DIR,
        env=server.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return server.process


def _wait_live(proc: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if get(url + "/healthz/live", timeout=1).status == 200:
                return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    return proc.communicate(timeout=60)[0]


def test_template_serves_the_app(tmp_path: Path, app_db, clean_redis):
    server = Gunicorn(write_ini(tmp_path, ini(app_db, clean_redis)), tmp_path)
    settings = server.settings()
    proc = _run(server)
    try:
        _wait_live(proc, server.url)
        assert get(server.url + "/?token=sensitive").headers["X-Cache"] == "MISS"
        assert get(server.url + "/").headers["X-Cache"] == "HIT"
    finally:
        out = _stop(proc)
    assert proc.returncode == 0, out
    # The role's sizing (one worker per CPU, at least two) and no preload: every worker
    # built the app itself.
    assert settings["workers"] >= 2 and settings["preload_app"] is False
    assert out.count("Booting worker") == settings["workers"]
    assert out.count("cachestack_app: started") == settings["workers"]
    assert "Using worker: gthread_fair.ThreadWorker" in out
    assert f"Listening at: {server.url}" in out
    access = [line for line in out.splitlines() if '"GET / HTTP/1.1" 200' in line]
    assert len(access) == 2 and access[-1].endswith('"HIT"')
    assert "sensitive" not in out
    assert app_db.password not in out


def test_template_stops_on_bad_config(tmp_path: Path):
    bad = write_ini(tmp_path, "[postgresql]\nhost = db\n")
    proc = _run(Gunicorn(bad, tmp_path))
    out, _stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3, out
    assert f"configuration error: {bad}: [redis]: section is missing" in out
    assert "Booting worker" not in out  # checked in the master, before any worker
    assert "Traceback" not in out


def test_reload_serves_the_new_config(tmp_path: Path, app_db, clean_redis):
    # systemctl reload sends HUP: each new worker must read the new app.ini.
    config_path = write_ini(tmp_path, ini(app_db, clean_redis))
    server = Gunicorn(config_path, tmp_path)
    proc = _run(server)
    try:
        _wait_live(proc, server.url)
        assert f"<strong>{app_db.host}</strong>" in get(server.url + "/").body
        config_path.write_text(ini(app_db, clean_redis).replace(app_db.host, "localhost"))
        clean_redis.client().flushall()
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "<strong>localhost</strong>" not in get(server.url + "/").body:
            assert time.monotonic() < deadline, "the reload kept the old configuration"
            time.sleep(0.2)
    finally:
        out = _stop(proc)
    assert "Handling signal: hup" in out, out
