"""The app under gunicorn as deployed (the app role's gunicorn.conf.py, rendered from its
template with its defaults): stampede across workers, metrics across workers, and bad
configuration stopping gunicorn with one clear line."""

from __future__ import annotations

import json
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict

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


def served_per_worker(metrics_dir: Path) -> dict[int, float]:
    """GET / requests each worker counted in its own multiprocess file (counter_<pid>.db)."""
    served: dict[int, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        served[pid] = sum(
            value
            for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(path))
            if json.loads(key)[1:3]
            == ["cachestack_http_requests_total", {"method": "GET", "route": "/", "status": "200"}]
        )
    return served


def test_metrics_add_up_across_workers(app_db, clean_redis, gunicorn_factory):
    # As the role runs it: its gunicorn.conf.py (no preload, workers from the CPU count,
    # gthread_fair), PROMETHEUS_MULTIPROC_DIR set; /metrics must add up every worker's counts.
    server = gunicorn_factory(ini(app_db, clean_redis))
    settings = server.settings()
    workers = settings["workers"]
    assert workers >= 2 and settings["preload_app"] is False
    # A cold burst larger than all workers' room (gthread_fair: twice their threads busy):
    # the requests wait on the cache lock while one runs the slow query, so each worker
    # takes its share, and then a run of hits.
    burst = 3 * workers * 2 * settings["threads"]
    barrier = threading.Barrier(burst)

    def one(_index: int):
        barrier.wait()
        return get(server.url + "/")

    with ThreadPoolExecutor(max_workers=burst) as pool:
        responses = list(pool.map(one, range(burst)))
    responses += [get(server.url + "/") for _request in range(20)]
    outcomes = [r.headers["X-Cache"] for r in responses]
    assert [r.status for r in responses] == [200] * len(responses)

    metrics = get(server.url + "/metrics").body
    assert metric(metrics, "cachestack_cache_misses_total") == outcomes.count("MISS") >= 1
    assert metric(metrics, "cachestack_cache_hits_total") == outcomes.count("HIT")
    assert metric(metrics, "cachestack_cache_bypasses_total") == 0
    assert metric(metrics, "cachestack_slow_queries_total") == slow_calls(app_db) == 1
    total = len(responses)
    assert metric(metrics, 'cachestack_http_request_duration_seconds_count{route="/"}') == total
    assert (
        metric(metrics, 'cachestack_http_request_duration_seconds_bucket{le="+Inf",route="/"}')
        == total
    )
    assert (
        metric(metrics, 'cachestack_http_requests_total{method="GET",route="/",status="200"}')
        == total
    )
    # The sum is over workers that each served part of the requests: no one process saw them all.
    served = served_per_worker(server.workdir / "metrics")
    assert sum(served.values()) == total
    assert len([pid for pid, count in served.items() if count > 0]) >= 2, served
    assert max(served.values()) < total
    log = server.stop()
    # No preload: each worker built the app itself, as in production.
    assert log.count("cachestack_app: started") == workers
    assert log.count("Booting worker") == workers


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
