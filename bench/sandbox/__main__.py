"""Benchmark the sandbox as a user reaches it: through nginx on 127.0.0.1:8080.

One command, from the repository root, with the sandbox up (``ansible-playbook site.yml``)::

    .venv/bin/python -m bench.sandbox [--from-nothing] [--rounds 3] [--duration 6]

1. Deploys bench/app's flask-caching reference app beside ours on cachestack-web (same
   virtualenv, our rendered gunicorn.conf.py, same PostgreSQL and Redis, same nginx site
   settings under ``server_name bench-reference``) with bench/sandbox/reference.yml.
2. Stampede: 50 concurrent cold requests to each app; slow_version() runs are counted
   inside PostgreSQL (distinct active queries seen in pg_stat_activity, sampled every
   20 ms by one session in cachestack-db; each run lasts 5 s).
3. MISS against HIT latency of one request on a new connection, as a user's browser sees it.
4. Cached-hit throughput: wrk -t2 -c16 -d6s on 127.0.0.1:8080, ours and the reference
   alternately, three rounds, warm cache; req/s, p50, p99.
5. Removes the reference app (always), then times ``ansible-playbook site.yml`` on the
   converged sandbox (it must change nothing); with ``--from-nothing`` also times
   ``playbooks/teardown.yml`` and then ``site.yml`` from nothing, before everything else.

Prints Markdown tables; figures, not pass/fail. Traffic goes to 127.0.0.1 only (and,
inside the sandbox, between its containers).
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cachelib
import flask_caching

from bench.app.__main__ import _ms
from tests.e2e.sandbox import PlaybookRun, ansible_playbook

REPO = Path(__file__).resolve().parents[2]
HOST, PORT = "127.0.0.1", 8080
WEB, DB, CACHE = "cachestack-web", "cachestack-db", "cachestack-cache"
DB_NAME = "cachestack"
BUNDLE_DIR = "/run/cachestack-bench"  # reference.yml's __bench_dir
APP_PYTHON = "/opt/cachestack/venv/bin/python"
APP_CODE_DIR = "/opt/cachestack/app"
URL = f"http://{HOST}:{PORT}/"
REFERENCE_HOST = "bench-reference"  # reference.yml's bench_reference_server_name
PLAYBOOK = "bench/sandbox/reference.yml"
ORIGINAL_MISS_S, ORIGINAL_HIT_S = 5.17, 0.095
RERUN_TARGET_S = 30.0
OURS, REFERENCE = "cachestack_app", "flask-caching"


@dataclass(frozen=True)
class Target:
    name: str
    host_header: str | None  # None: nginx's default server (ours)


TARGETS = (Target(OURS, None), Target(REFERENCE, REFERENCE_HOST))


# --- the sandbox ------------------------------------------------------------------------


def busy_runs() -> list[str]:
    """Other runs that build, tear down or break the sandbox: site.yml, teardown, the
    end-to-end tests, and containers (re)started in the last minute (fault tests)."""
    listing = subprocess.run(
        ["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True, check=False
    ).stdout
    processes = [line.split(None, 2) for line in listing.splitlines() if line.strip()]
    ours = {os.getpid()}  # this benchmark's own playbook runs do not count
    for _depth in range(6):
        ours |= {int(p[0]) for p in processes if len(p) == 3 and int(p[1]) in ours}
    busy = [
        args
        for pid, _ppid, args in (p for p in processes if len(p) == 3)
        if int(pid) not in ours
        and (
            re.search(r"ansible-playbook.*\b(site\.yml|teardown\.yml)\b", args)
            or re.search(r"pytest.*tests/e2e", args)
            # the whole suite (scripts/test): its end-to-end tests rebuild the sandbox
            or (re.search(r"(^|\s)\S*/pytest(\s|$)", args) and "tests/" not in args)
        )
        and "inventory/aws" not in args  # the AWS playbooks (against moto) do not count
    ]
    started = subprocess.run(
        ["docker", "inspect", "-f", "{{.Name}} {{.State.StartedAt}}", WEB, DB, CACHE],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    now = datetime.now(UTC)
    for line in started.splitlines():
        name, _sep, stamp = line.partition(" ")
        try:
            when = datetime.fromisoformat(
                re.sub(r"(\.\d{6})\d*", r"\1", stamp.strip()).replace("Z", "+00:00")
            )
        except ValueError:  # no such container (torn down)
            continue
        if (now - when).total_seconds() < 60:
            busy.append(f"{name.lstrip('/')} started {(now - when).total_seconds():.0f} s ago")
    return busy


class BusyMonitor:
    """Notes other sandbox runs seen while the benchmark runs (they skew its figures)."""

    def __init__(self, interval: float = 5.0) -> None:
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            for item in busy_runs():
                short = re.sub(r"\s+\d+ s ago$", "", item)[:100]
                if short not in self.seen:
                    self.seen.append(short)

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join()
        return self.seen


def ready_status() -> int | None:
    try:
        return get("/healthz/ready", timeout=5).status
    except (OSError, http.client.HTTPException):
        return None


def wait_for_quiet_sandbox(seconds: float) -> None:
    """Wait until no other run builds the sandbox and readiness answers 200."""
    deadline = time.monotonic() + seconds
    while True:
        busy, status = busy_runs(), ready_status()
        if not busy and status == 200:
            return
        if time.monotonic() > deadline:
            raise SystemExit(
                f"the sandbox is not ready (readiness {status}, busy: {'; '.join(busy)[:300]})"
            )
        print(
            f"waiting: readiness {status}; busy: {'; '.join(busy)[:300] or 'no'}",
            flush=True,
        )
        time.sleep(10)


def build_bundle(path: Path) -> None:
    """bench/ (the reference app and remote.py), flask_caching and cachelib, for the web host."""

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if "__pycache__" in info.name or info.name.endswith(".pyc"):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    with tarfile.open(path, "w:gz") as tar:
        for name in (
            "bench/app/__init__.py",
            "bench/app/reference.py",
            "bench/sandbox/__init__.py",
            "bench/sandbox/remote.py",
        ):
            tar.add(REPO / name, arcname=name, filter=clean)
        for package in (flask_caching, cachelib):
            folder = Path(package.__file__).parent  # type: ignore[arg-type]
            tar.add(folder, arcname=folder.name, filter=clean)


def playbook(*args: str) -> PlaybookRun:
    run = ansible_playbook(PLAYBOOK, *args, timeout=600)
    if run.returncode != 0:
        raise RuntimeError(f"{PLAYBOOK} {' '.join(args)} failed:\n{run.tail(40)}")
    return run


def forget_cached_pages() -> None:
    """Delete both apps' cached pages in Redis, with the app's own client and config."""
    subprocess.run(
        [
            "docker",
            "exec",
            "-e",
            f"PYTHONPATH={BUNDLE_DIR}:{APP_CODE_DIR}",
            "-e",
            "PYTHONDONTWRITEBYTECODE=1",
            WEB,
            APP_PYTHON,
            "-m",
            "bench.sandbox.remote",
            "forget",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


# Samples pg_stat_activity every 20 ms in one session and counts distinct
# (backend, query start) pairs running slow_version(); stops 2 s after the last one ended.
WATCH_SQL = r"""
CREATE TEMP TABLE seen (pid int, query_start timestamptz, PRIMARY KEY (pid, query_start));
DO $$
DECLARE
  started timestamptz := clock_timestamp();
  last_active timestamptz;
  active int;
BEGIN
  RAISE NOTICE 'watching';
  LOOP
    PERFORM pg_stat_clear_snapshot();
    INSERT INTO seen
      SELECT pid, query_start FROM pg_stat_activity
      WHERE datname = current_database() AND state = 'active'
        AND pid <> pg_backend_pid() AND query ~* 'slow_version\s*\('
      ON CONFLICT DO NOTHING;
    SELECT count(*) INTO active FROM pg_stat_activity
      WHERE datname = current_database() AND state = 'active'
        AND pid <> pg_backend_pid() AND query ~* 'slow_version\s*\(';
    IF active > 0 THEN
      last_active := clock_timestamp();
    END IF;
    EXIT WHEN last_active IS NOT NULL AND clock_timestamp() - last_active > interval '2 s';
    EXIT WHEN clock_timestamp() - started > interval '90 s';
    PERFORM pg_sleep(0.02);
  END LOOP;
END $$;
SELECT count(*) FROM seen;
"""


class SlowQueryCounter:
    """Counts slow_version() runs inside PostgreSQL while it is running."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [
                "docker",
                "exec",
                "-i",
                DB,
                "runuser",
                "-u",
                "postgres",
                "--",
                "psql",
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                DB_NAME,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdin is not None
        self.process.stdin.write(WATCH_SQL)
        self.process.stdin.close()
        self.process.stdin = None  # communicate() must not flush it
        time.sleep(1.0)  # connected and sampling before the requests go out
        if self.process.poll() is not None:
            raise RuntimeError(f"the slow-query counter stopped: {self.process.stderr.read()}")  # type: ignore[union-attr]

    def result(self) -> int:
        out, err = self.process.communicate(timeout=120)
        if self.process.returncode != 0:
            raise RuntimeError(f"the slow-query counter failed: {err.strip()}")
        return int(out.split()[-1])


# --- HTTP -------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    cache: str
    seconds: float


def get(path: str = "/", host_header: str | None = None, timeout: float = 60) -> Response:
    """One request on a new connection (as a browser's first visit), timed to the last byte."""
    headers = {"Host": host_header} if host_header else {}
    started = time.perf_counter()
    conn = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        return Response(
            response.status,
            response.getheader("X-Cache", "-"),
            time.perf_counter() - started,
        )
    finally:
        conn.close()


def stampede(target: Target, n: int = 50) -> tuple[int, list[Response]]:
    """n concurrent cold requests; returns the slow queries PostgreSQL ran, and the answers."""
    forget_cached_pages()
    counter = SlowQueryCounter()
    barrier = threading.Barrier(n)

    def one(_index: int) -> Response:
        barrier.wait()
        return get(host_header=target.host_header)

    with ThreadPoolExecutor(max_workers=n) as pool:
        responses = list(pool.map(one, range(n)))
    return counter.result(), responses


def miss_then_hit(hits: int = 20) -> dict[str, tuple[Response, list[Response]]]:
    """Each app's cold page (MISS), then warm pages (HIT) sampled alternately."""
    misses = {}
    for target in TARGETS:
        forget_cached_pages()
        misses[target.name] = get(host_header=target.host_header)
    samples: dict[str, list[Response]] = {target.name: [] for target in TARGETS}
    for _sample in range(hits):
        for target in TARGETS:
            samples[target.name].append(get(host_header=target.host_header))
    return {name: (miss, samples[name]) for name, miss in misses.items()}


def run_wrk(target: Target, duration: int, threads: int, connections: int) -> dict[str, float]:
    wrk = shutil.which("wrk")
    if not wrk:
        raise SystemExit("wrk not found: apt-get install wrk")
    header = ["-H", f"Host: {target.host_header}"] if target.host_header else []
    out = subprocess.run(
        [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", *header, URL],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> dict[str, float]:
    """req/s, p50 and p99 (ms), and non-2xx/3xx responses from wrk --latency's output."""
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (rps and p50 and p99):
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(rps.group(1)),
        "p50": _ms(p50.group(1)),
        "p99": _ms(p99.group(1)),
        "non2xx": float(errors.group(1)) if errors else 0.0,
    }


# --- the machine ------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    return {
        "cpus": str(os.cpu_count()),
        "cpu": model.group(1).strip() if model else platform.processor() or "unknown",
        "memory": f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB" if mem else "unknown",
        "kernel": platform.release(),
    }


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- the run ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=6, help="seconds per wrk run")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument(
        "--from-nothing",
        action="store_true",
        help="first tear the sandbox down and time site.yml from nothing (minutes)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=600,
        help="seconds to wait for a ready sandbox and no other site.yml/teardown run",
    )
    args = parser.parse_args()

    wait_for_quiet_sandbox(args.wait)
    facts = machine()
    load_before = load()
    print(f"machine: {facts['cpus']} CPUs, {facts['cpu']}, {facts['memory']}", flush=True)

    timings: dict[str, PlaybookRun] = {}
    monitor = BusyMonitor()
    if args.from_nothing:
        print("teardown, then site.yml from nothing ...", flush=True)
        timings["teardown"] = ansible_playbook("playbooks/teardown.yml")
        if timings["teardown"].returncode != 0:
            raise SystemExit(f"teardown failed:\n{timings['teardown'].tail()}")
        timings["from nothing"] = ansible_playbook("site.yml")
        if timings["from nothing"].returncode != 0:
            raise SystemExit(f"site.yml failed:\n{timings['from nothing'].tail()}")
        wait_for_quiet_sandbox(120)

    stampedes: dict[str, tuple[int, list[Response]]] = {}
    results: dict[str, list[dict[str, float]]] = {t.name: [] for t in TARGETS}
    workdir = Path(tempfile.mkdtemp(prefix="cachestack-bench-sandbox-"))
    try:
        bundle = workdir / "bundle.tar.gz"
        build_bundle(bundle)
        print("deploying the reference app on cachestack-web ...", flush=True)
        playbook("-e", "bench_reference_state=present", "-e", f"bench_reference_bundle={bundle}")

        for target in TARGETS:
            print(f"stampede: 50 concurrent cold requests to {target.name} ...", flush=True)
            stampedes[target.name] = stampede(target)
        print("MISS then HIT, one request at a time ...", flush=True)
        latencies = miss_then_hit()

        # One short discarded run each first: workers, pools and nginx's upstream
        # connections warm up before anything is counted.
        for target in TARGETS:
            run_wrk(target, 2, args.threads, args.connections)
        for round_no in range(1, args.rounds + 1):
            for target in TARGETS:
                get(host_header=target.host_header)  # warm
                row = run_wrk(target, args.duration, args.threads, args.connections)
                results[target.name].append(row)
                print(
                    f"round {round_no} {target.name:<15} {row['rps']:>8.0f} req/s "
                    f"p50 {row['p50']:.2f} ms p99 {row['p99']:.2f} ms",
                    flush=True,
                )
    finally:
        print("removing the reference app ...", flush=True)
        try:
            playbook("-e", "bench_reference_state=absent")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    print("rerun: ansible-playbook site.yml on the converged sandbox ...", flush=True)
    timings["rerun"] = ansible_playbook("site.yml")
    load_after = load()
    others = [x for x in monitor.stop() if "bench/sandbox" not in x]
    if args.from_nothing:  # our own teardown and site.yml restarted the containers
        others = [x for x in others if not x.endswith(" started")]
    print_report(args, facts, (load_before, load_after), results, stampedes, latencies, timings)
    print(f"\nOther sandbox runs seen meanwhile: {'; '.join(others) if others else 'none'}")


def changed_tasks(output: str) -> list[str]:
    """The tasks and handlers a playbook run reported as changed (names only)."""
    names, current = [], ""
    for line in output.splitlines():
        heading = re.match(r"^(?:TASK|RUNNING HANDLER) \[(.+?)\]", line)
        if heading:
            current = heading.group(1)
        elif line.startswith("changed:") and current and current not in names:
            names.append(current)
    return names


def _median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def print_report(
    args: argparse.Namespace,
    facts: dict[str, str],
    loads: tuple[str, str],
    results: dict[str, list[dict[str, float]]],
    stampedes: dict[str, tuple[int, list[Response]]],
    latencies: dict[str, tuple[Response, list[Response]]],
    timings: dict[str, PlaybookRun],
) -> None:
    out = sys.stdout.write
    out("\n")
    out(
        f"Machine: {facts['cpus']} CPUs ({facts['cpu']}), {facts['memory']} memory, "
        f"Linux {facts['kernel']}; load average (1, 5, 15 min) {loads[0]} before, "
        f"{loads[1]} after. Command: `.venv/bin/python -m bench.sandbox"
        f"{' --from-nothing' if 'from nothing' in timings else ''}`\n\n"
    )

    out(
        f"Cached-hit throughput through nginx on 127.0.0.1:8080 (wrk -t{args.threads} "
        f"-c{args.connections} -d{args.duration}s, warm cache, {args.rounds} rounds "
        "alternating; median of the rounds):\n\n"
    )
    out("| app | req/s | p50 ms | p99 ms | per round req/s | non-2xx |\n")
    out("|---|---:|---:|---:|---|---:|\n")
    for name, rows in results.items():
        rounds = ", ".join(f"{row['rps']:.0f}" for row in rows)
        out(
            f"| {name} | {_median(rows, 'rps'):.0f} | {_median(rows, 'p50'):.2f} | "
            f"{_median(rows, 'p99'):.2f} | {rounds} | "
            f"{sum(row['non2xx'] for row in rows):.0f} |\n"
        )
    ratios = [o["rps"] / r["rps"] for o, r in zip(results[OURS], results[REFERENCE], strict=True)]
    out(
        f"\nThroughput ratio (ours / reference): {statistics.median(ratios):.2f}x "
        f"(per round: {', '.join(f'{x:.2f}' for x in ratios)})\n\n"
    )

    out(
        "Stampede: 50 concurrent cold requests through nginx "
        "(slow_version() runs counted inside PostgreSQL):\n\n"
    )
    out("| app | slow queries run | answered 200 | slowest answer s |\n")
    out("|---|---:|---:|---:|\n")
    for name, (count, responses) in stampedes.items():
        ok = sum(1 for r in responses if r.status == 200)
        slowest = max(r.seconds for r in responses)
        out(f"| {name} | {count} | {ok}/{len(responses)} | {slowest:.2f} |\n")

    out("\nOne page on a new connection, cold cache (MISS) then warm (HIT, median of 20):\n\n")
    out("| app | MISS s | HIT ms | MISS / HIT |\n")
    out("|---|---:|---:|---:|\n")
    for name, (miss, hits) in latencies.items():
        hit = statistics.median(r.seconds for r in hits)
        label = f"{name} (X-Cache {miss.cache}, then {hits[-1].cache})" if name == OURS else name
        out(f"| {label} | {miss.seconds:.2f} | {hit * 1000:.1f} | {miss.seconds / hit:.0f}x |\n")
    out(
        f"| the original (published) | {ORIGINAL_MISS_S:.2f} | {ORIGINAL_HIT_S * 1000:.0f} | "
        f"{ORIGINAL_MISS_S / ORIGINAL_HIT_S:.0f}x |\n"
    )

    out("\n`ansible-playbook site.yml` wall time:\n\n")
    out("| run | seconds | changed | result |\n")
    out("|---|---:|---:|---|\n")
    for name, run in timings.items():
        changed = sum(host["changed"] for host in run.recap().values())
        if name == "rerun":
            verdict = "ok" if run.returncode == 0 and changed == 0 else "CHANGED or FAILED"
            label = f"rerun on the converged sandbox (target < {RERUN_TARGET_S:.0f} s)"
        else:
            verdict = "ok" if run.returncode == 0 else "FAILED"
            label = "teardown" if name == "teardown" else "from nothing (after teardown)"
        out(f"| {label} | {run.seconds:.1f} | {changed} | {verdict} |\n")
    for name, run in timings.items():
        if name == "rerun" and changed_tasks(run.output):
            out(f"\nChanged in the rerun: {'; '.join(changed_tasks(run.output))}\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
