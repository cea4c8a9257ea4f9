"""The app under gunicorn as deployed: stampede across workers, metrics across workers,
and bad configuration stopping gunicorn with one clear line."""

from __future__ import annotations

import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.app.conftest import (
    APP_DIR,
    Gunicorn,
    get,
    ini,
    metric,
    slow_calls,
    write_ini,
)


def test_50_concurrent_cold_requests_run_the_slow_query_once(app_db, clean_redis, gunicorn_factory):
    server = gunicorn_factory(ini(app_db, clean_redis))
    barrier = threading.Barrier(50)

    def one(_index: int):
        barrier.wait()
        return get(server.url + "/")

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(one, range(50)))
    assert [r.status for r in responses] == [200] * 50
    assert all("PostgreSQL 17" in r.body for r in responses)
    assert slow_calls(app_db) == 1  # counted by PostgreSQL itself
    outcomes = [r.headers["X-Cache"] for r in responses]
    assert set(outcomes) <= {"MISS", "HIT"}
    assert "MISS" in outcomes

    metrics = get(server.url + "/metrics").body
    assert metric(metrics, "cachestack_slow_queries_total") == 1
    assert metric(metrics, "cachestack_cache_misses_total") == outcomes.count("MISS")
    assert metric(metrics, "cachestack_cache_hits_total") == outcomes.count("HIT")


def test_metrics_add_up_across_workers(app_db, clean_redis, gunicorn_factory):
    server = gunicorn_factory(ini(app_db, clean_redis))
    assert get(server.url + "/").headers["X-Cache"] == "MISS"
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: get(server.url + "/"), range(40)))
    assert [r.headers["X-Cache"] for r in responses] == ["HIT"] * 40
    metrics = get(server.url + "/metrics").body
    assert metric(metrics, "cachestack_cache_hits_total") == 40
    assert metric(metrics, "cachestack_cache_misses_total") == 1
    assert metric(metrics, 'cachestack_http_request_duration_seconds_count{route="/"}') == 41
    assert (
        metric(metrics, 'cachestack_http_requests_total{method="GET",route="/",status="200"}') == 41
    )
    # Two workers wrote metrics; /metrics summed them. The app loaded once, in the master.
    pids = {p.stem.rsplit("_", 1)[1] for p in (server.workdir / "metrics").glob("counter_*.db")}
    assert len(pids) >= 2
    log = server.stop()
    assert log.count("cachestack_app: started") == 1
    assert log.count("Booting worker") == 2


def _bad_configs(tmp_path, app_db, redis) -> dict[str, tuple[str, str]]:
    good = ini(app_db, redis)
    return {
        "missing file": (None, "file not found"),
        "missing section": (good.split("[redis]", maxsplit=1)[0], "[redis]: section is missing"),
        "missing key": (
            good.replace(f"host = {redis.host}\n", "", 1).replace(f"host = {app_db.host}\n", "", 1),
            "[postgresql] host: required key is missing",
        ),
        "bad port": (
            good.replace(f"port = {app_db.port}", "port = 99999", 1),
            "[postgresql] port: must be a port number",
        ),
        "bad boolean": (good + "", "[redis] ssl: must be true or false"),
        "unknown key": (good.replace("[cache]", "[cache]\nttl_seconds = 3"), "[cache] ttl_seconds"),
    }


@pytest.mark.parametrize(
    "kind",
    ["missing file", "missing section", "missing key", "bad port", "bad boolean", "unknown key"],
)
def test_bad_config_stops_gunicorn_with_one_clear_line(kind, tmp_path, app_db, clean_redis):
    text, expected = _bad_configs(tmp_path, app_db, clean_redis)[kind]
    if kind == "bad boolean":
        text = ini(app_db, clean_redis, redis_extra={"ssl": "yes"})
    path = tmp_path / "missing.ini" if text is None else write_ini(tmp_path, text)
    server = Gunicorn(path, tmp_path)
    proc = subprocess.run(
        server.command(),
        cwd=APP_DIR,
        env=server.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 3, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if "configuration error" in line]
    assert lines, output
    assert str(path) in lines[0]
    assert expected in lines[0]
    assert app_db.password not in output
    assert len(lines) == 1  # loaded once, in the master
