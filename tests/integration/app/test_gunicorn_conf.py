"""The production gunicorn config template (rendered as the app role renders it) serves
the app, keeps query strings out of the access log and stops on a bad config."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import jinja2
from ansible.plugins.filter.core import to_bool

from tests.integration.app.conftest import APP_DIR, GUNICORN, REPO, Gunicorn, get, ini, write_ini
from tests.servers.postgresql import free_port

TEMPLATE = REPO / "roles" / "web_app" / "templates" / "gunicorn.conf.py.j2"

DEFAULTS = {
    "web_app_gunicorn_workers": 0,
    "web_app_gunicorn_threads": 4,
    "web_app_gunicorn_backlog": 2048,
    "web_app_gunicorn_timeout": 30,
    "web_app_gunicorn_graceful_timeout": 20,
    "web_app_gunicorn_keepalive": 5,
    "web_app_gunicorn_max_requests": 10000,
    "web_app_gunicorn_access_log": True,
    "web_app_gunicorn_log_level": "info",
}


def render(path: Path, **overrides: object) -> Path:
    """Render with stand-ins for Ansible's ``comment`` and ``to_json`` filters, and its own
    ``bool``."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True)  # noqa: S701
    env.filters["comment"] = lambda text: f"#\n# {text}\n#"
    env.filters["to_json"] = json.dumps
    env.filters["bool"] = to_bool
    text = env.from_string(TEMPLATE.read_text()).render(
        ansible_managed="Ansible managed", **{**DEFAULTS, **overrides}
    )
    path.write_text(text)
    compile(text, str(path), "exec")
    return path


def _run(conf: Path, config_path: Path, workdir: Path) -> subprocess.Popen[str]:
    env = Gunicorn(config_path, workdir).env()
    return subprocess.Popen(
        [GUNICORN, "-c", str(conf), "cachestack_app:create_app()"],
        cwd=APP_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_template_serves_the_app(tmp_path, app_db, clean_redis):
    port = free_port()
    conf = render(tmp_path / "gunicorn.conf.py", web_app_gunicorn_bind=f"127.0.0.1:{port}")
    proc = _run(conf, write_ini(tmp_path, ini(app_db, clean_redis)), tmp_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if get(f"http://127.0.0.1:{port}/healthz/live", timeout=1).status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert get(f"http://127.0.0.1:{port}/?token=sensitive").headers["X-Cache"] == "MISS"
        assert get(f"http://127.0.0.1:{port}/").headers["X-Cache"] == "HIT"
    finally:
        proc.terminate()
        out, _stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert out.count("Booting worker") >= 2  # sized from the CPU count, at least two
    assert "Using worker: gthread_fair.ThreadWorker" in out
    access = [line for line in out.splitlines() if '"GET / HTTP/1.1" 200' in line]
    assert len(access) == 2 and access[-1].endswith('"HIT"')
    assert "sensitive" not in out
    assert app_db.password not in out


def test_template_stops_on_bad_config(tmp_path):
    conf = render(tmp_path / "gunicorn.conf.py", web_app_gunicorn_bind=f"127.0.0.1:{free_port()}")
    bad = write_ini(tmp_path, "[postgresql]\nhost = db\n")
    proc = _run(conf, bad, tmp_path)
    out, _stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3, out
    assert f"configuration error: {bad}: [redis]: section is missing" in out
    assert "Traceback" not in out


def _wait_live(proc: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if get(f"http://127.0.0.1:{port}/healthz/live", timeout=1).status == 200:
                return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.1)


def _get_or_print(proc, port):
    try:
        return get(f"http://127.0.0.1:{port}/").body
    except OSError:
        proc.terminate()
        print(proc.communicate(timeout=30)[0])
        raise


def test_reload_serves_the_new_config(tmp_path, app_db, clean_redis):
    # systemctl reload sends HUP: the preloaded app must not outlive it.
    port = free_port()
    conf = render(tmp_path / "gunicorn.conf.py", web_app_gunicorn_bind=f"127.0.0.1:{port}")
    config_path = write_ini(tmp_path, ini(app_db, clean_redis))
    proc = _run(conf, config_path, tmp_path)
    try:
        _wait_live(proc, port)
        assert f"<strong>{app_db.host}</strong>" in get(f"http://127.0.0.1:{port}/").body
        config_path.write_text(ini(app_db, clean_redis).replace(app_db.host, "localhost"))
        clean_redis.client().flushall()
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "<strong>localhost</strong>" not in _get_or_print(proc, port):
            assert time.monotonic() < deadline, "the reload kept the old configuration"
            time.sleep(0.2)
    finally:
        proc.terminate()
        out, _stderr = proc.communicate(timeout=30)
    assert "Handling signal: hup" in out, out
