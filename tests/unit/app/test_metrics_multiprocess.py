"""The metrics in multiprocess mode (PROMETHEUS_MULTIPROC_DIR, as under gunicorn): writes
take the process id from a cache renewed at fork, not from os.getpid() each time, and a
forked child still counts in its own file, added up with the parent's. In a fresh
interpreter: the mode is chosen when cachestack_app.metrics is first imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.unit.app.conftest import APP_DIR

SCRIPT = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
# Counted from before prometheus_client is imported (it keeps a reference to os.getpid).
calls = []
real_getpid = os.getpid
os.getpid = lambda: calls.append(1) or real_getpid()
from cachestack_app import metrics
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

calls.clear()
for _n in range(100):
    metrics.CACHE_LOCAL_HITS.inc()
    metrics.LATENCY.labels("/").observe(0.0001)
getpid_calls = len(calls)

child = os.fork()
if child == 0:
    metrics.CACHE_LOCAL_HITS.inc(10)
    os._exit(0)
os.waitpid(child, 0)
metrics.CACHE_LOCAL_HITS.inc(1000)
registry = CollectorRegistry()
MultiProcessCollector(registry)
print(json.dumps({
    "getpid_calls": getpid_calls,
    "total": registry.get_sample_value("cachestack_cache_local_hits_total"),
    "latency_count": registry.get_sample_value(
        "cachestack_http_request_duration_seconds_count", {"route": "/"}),
    "files": sorted(os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"])),
    "parent": real_getpid(),
    "child": child,
}))
"""


def test_writes_use_the_pid_cached_at_fork_and_a_child_counts_in_its_own_file(tmp_path: Path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(APP_DIR)],
        env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    got = json.loads(out)
    assert got["getpid_calls"] == 0  # 300 writes, no os.getpid() call
    # 100 before the fork, 10 in the child, 1000 after: nothing lost or counted twice.
    assert got["total"] == 1110
    assert got["latency_count"] == 100
    assert f"counter_{got['parent']}.db" in got["files"]
    assert f"counter_{got['child']}.db" in got["files"]
