"""Benchmark cachestack_app against a cache cluster of 1 shard and of 3 shards.

One command, from the repository root::

    .venv/bin/python -m bench.app.cluster [--rounds 3] [--duration 6]
        [--keys 10000] [--keys-seconds 5] [--no-keys]

Starts PostgreSQL 17 on loopback and two Valkey 8 clusters with the test fixtures' helper
(``tests.servers.redis.start_sharded_cluster``: TLS only, AUTH, ``cluster-enabled``, each
node in a container of the servers image bound to 127.0.0.1): 1 shard x 1 replica and
3 shards x 1 replica. Our app runs twice under gunicorn, as the stack runs it in cluster
mode (``[redis] cluster = true``, ``ssl = true`` with the CA checked, the password in a
``password_file``, ``socket_timeout = 0.2``, the role's [cache] defaults), once against
each cluster, with the floor (``bench/app/floor.py``, a static page) beside them, all
under the same gunicorn settings as ``python -m bench.app`` (``-w 2 -k
gthread_fair.ThreadWorker --threads 4``). wrk (``-t2 -c16 -d6s`` on 127.0.0.1, warm cache)
drives the three alternately for ``--rounds`` rounds; it prints req/s, p50 and p99 per
round, the medians, the ratio 3 shards / 1 shard per round and its median, and each as a
share of the floor's req/s in the same round.

The page is ONE key (``<namespace>:{slow_version}:v2``, one hash slot), so it lives on one
shard whatever the cluster's size: 3 shards cannot make a single-key page faster; the page
figures show what the cluster's shape costs a hit (nothing, or the noise). What sharding
buys is spreading many keys: unless ``--no-keys``, the bench process then runs a
many-keys load against each cluster in turn, alternating: 2 processes, each with redis-py's
cluster client, pipelined GETs of 100 random keys out of ``--keys`` (written first) for
``--keys-seconds``; it prints GETs/s per round, the medians and their ratio. Both
clusters, the load generator and the servers share this machine's CPUs: on a 2-CPU
machine three shards have fewer cores than servers. Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from redis.cluster import key_slot

from bench.app.__main__ import (
    APP_DIR,
    FLOOR,
    REPO,
    WORKER_CLASS,
    App,
    fetch,
    gunicorn_args,
    measure,
    print_rounds,
    run_wrk,
    wait_listening,
)
from tests.servers.postgresql import start_postgresql
from tests.servers.redis import ShardedCluster, make_certificates, start_sharded_cluster

ONE = "1 shard"
THREE = "3 shards"
SHAPES = {ONE: 1, THREE: 3}
# The page's hash tag (cachestack_app.cache.cache_key): one slot, so one shard.
PAGE_HASH_TAG = b"slow_version"
KEYS_PROCESSES = 2
KEYS_BATCH = 100


def our_app(name: str, workdir: Path, pg: Any, cluster: ShardedCluster) -> App:
    """cachestack_app against ``cluster``, configured as the app role configures it."""
    slug = name.replace(" ", "-")
    password_file = workdir / f"{slug}.redis-password"
    password_file.write_text(cluster.password + "\n")
    password_file.chmod(0o600)
    node = cluster.primaries[0]
    ini = workdir / f"{slug}.ini"
    ini.write_text(
        f"[postgresql]\nhost = {pg.host}\nport = {pg.port}\ndbname = bench\n"
        f"user = {pg.user}\npassword = {pg.password}\nsslmode = disable\n\n"
        f"[redis]\nhost = {node.host}\nport = {node.port}\npassword_file = {password_file}\n"
        f"ssl = true\nssl_ca_certs = {cluster.ca_file}\ncluster = true\nsocket_timeout = 0.2\n\n"
        f"[cache]\nttl = 300\nstale_ttl = 600\nlocal_ttl = 0\n"
        f"namespace = {slug}\n"
    )
    ini.chmod(0o600)
    metrics_dir = workdir / f"metrics-{slug}"
    metrics_dir.mkdir()
    return App(
        name,
        "cachestack_app:create_app()",
        APP_DIR,
        {"CACHESTACK_APP_CONFIG": str(ini), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
    )


def cache_outcome(url: str) -> str:
    """The page's X-Cache (HIT, MISS, STALE, BYPASS...); "" for the floor, which has none."""
    with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - loopback http
        resp.read()
        return str(resp.getheader("X-Cache", ""))


def cluster_client(kwargs: dict[str, Any]) -> Any:
    from redis.cluster import RedisCluster

    return RedisCluster(**kwargs, socket_timeout=5)


def write_keys(kwargs: dict[str, Any], keys: int) -> None:
    client = cluster_client(kwargs)
    try:
        for first in range(0, keys, 1000):
            pipe = client.pipeline(transaction=False)
            for index in range(first, min(first + 1000, keys)):
                pipe.set(f"bench:key:{index}", b"x" * 100)
            pipe.execute()
    finally:
        client.close()


def get_keys(kwargs: dict[str, Any], keys: int, seconds: float, seed: int) -> int:
    """GETs done in ``seconds``: pipelines of KEYS_BATCH random keys (bounded by time)."""
    rng = random.Random(seed)  # key choice, not security
    client = cluster_client(kwargs)
    done = 0
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pipe = client.pipeline(transaction=False)
            for _key in range(KEYS_BATCH):
                pipe.get(f"bench:key:{rng.randrange(keys)}")
            done += sum(1 for value in pipe.execute() if value is not None)
    finally:
        client.close()
    return done


def keys_round(kwargs: dict[str, Any], keys: int, seconds: float, seed: int) -> float:
    with ProcessPoolExecutor(max_workers=KEYS_PROCESSES) as pool:
        runs = [
            pool.submit(get_keys, kwargs, keys, seconds, seed + index)
            for index in range(KEYS_PROCESSES)
        ]
        return sum(run.result() for run in runs) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=6, help="seconds per wrk run")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument(
        "--slow-seconds", type=float, default=1.0, help="pg_sleep in slow_version() (cold fill)"
    )
    parser.add_argument("--keys", type=int, default=10000, help="keys of the many-keys load")
    parser.add_argument(
        "--keys-seconds", type=float, default=5.0, help="seconds per many-keys round"
    )
    parser.add_argument("--no-keys", action="store_true", help="skip the many-keys load")
    parser.add_argument(
        "--worker-class",
        default=WORKER_CLASS,
        help=f"gunicorn's -k for the apps (default {WORKER_CLASS}, the app role's)",
    )
    args = parser.parse_args()
    for name in ("rounds", "duration", "threads", "connections", "keys"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if not 0 < args.keys_seconds <= 60 or not 0 < args.duration <= 60:
        parser.error("--duration and --keys-seconds: more than 0, at most 60 seconds")
    load_before = os.getloadavg()

    workdir = Path(tempfile.mkdtemp(prefix="cachestack-bench-cluster-"))
    certs = make_certificates(workdir / "certs")
    pg = start_postgresql()
    clusters: dict[str, ShardedCluster] = {}
    apps: list[App] = []
    results: dict[str, list[dict[str, Any]]] = {}
    keys_results: dict[str, list[float]] = {name: [] for name in SHAPES}
    owners: dict[str, int] = {}
    spread: dict[str, str] = {}
    try:
        pg.create_database("bench")
        pg.execute(
            "CREATE FUNCTION slow_version() RETURNS text LANGUAGE plpgsql AS $$ BEGIN "
            f"PERFORM pg_sleep({args.slow_seconds}); RETURN version(); END $$",
            dbname="bench",
        )
        for name, shards in SHAPES.items():
            print(f"starting the {name} x 1 replica cluster (TLS, AUTH)", flush=True)
            clusters[name] = start_sharded_cluster(certs, shards=shards, replicas=1)
            cluster = clusters[name]
            port = cluster.owner(key_slot(PAGE_HASH_TAG), via=cluster.primaries[0])
            ports = [node.port for node in cluster.primaries]
            owners[name] = ports.index(port) + 1 if port in ports else 0
        apps = [our_app(name, workdir, pg, clusters[name]) for name in SHAPES]
        apps.append(App(FLOOR, "bench.app.floor:app", REPO, {}))
        for app in apps:
            app.start(workdir, gunicorn_args(args))
        for app in apps:
            wait_listening(app)
        for app in apps:  # the first fill, then a short discarded run: pools warm up
            if fetch(app.url) != 200:
                raise RuntimeError(f"{app.name} did not answer 200; see {app.log}")
            run_wrk(app.url, 2, args.threads, args.connections)
        for app in apps[:-1]:  # a page from the database would measure PostgreSQL instead
            outcome = cache_outcome(app.url)
            if outcome != "HIT":
                raise RuntimeError(f"{app.name}: X-Cache {outcome!r}, not HIT; see {app.log}")

        results = {app.name: [] for app in apps}
        for round_no in range(1, args.rounds + 1):
            for app in apps:
                fetch(app.url)
                result = measure(app, args)
                results[app.name].append(result)
                print(
                    f"round {round_no} {app.name:<16} {result['rps']:>9.0f} req/s "
                    f"p50 {result['p50']:.2f} ms p99 {result['p99']:.2f} ms "
                    f"non-2xx {result['non2xx']:.0f} connections per worker {result['split']}",
                    flush=True,
                )
        for app in apps:  # the many-keys load runs with no app running
            app.stop()

        if not args.no_keys:
            print(
                f"many keys: {args.keys} keys, {KEYS_PROCESSES} processes of pipelined GETs "
                f"({KEYS_BATCH} random keys each) for {args.keys_seconds:g} s",
                flush=True,
            )
            for name, cluster in clusters.items():
                write_keys(cluster.primaries[0].client_kwargs(), args.keys)
                spread[name] = "/".join(
                    str(cluster.command(node, "DBSIZE")) for node in cluster.primaries
                )
                print(f"  {name}: keys per primary {spread[name]}", flush=True)
            for round_no in range(1, args.rounds + 1):
                for name, cluster in clusters.items():
                    rate = keys_round(
                        cluster.primaries[0].client_kwargs(),
                        args.keys,
                        args.keys_seconds,
                        seed=round_no,
                    )
                    keys_results[name].append(rate)
                    print(f"round {round_no} {name:<16} {rate:>9.0f} GETs/s", flush=True)
    finally:
        for app in apps:
            app.stop()
        for cluster in clusters.values():
            cluster.destroy()
        pg.destroy()
        shutil.rmtree(workdir, ignore_errors=True)

    print_tables(args, results, keys_results, owners, spread, (load_before, os.getloadavg()))


def print_tables(
    args: argparse.Namespace,
    results: dict[str, list[dict[str, Any]]],
    keys_results: dict[str, list[float]],
    owners: dict[str, int],
    spread: dict[str, str],
    loads: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> None:
    def rounds(values: list[float]) -> str:
        each = ", ".join(f"{x:.2f}" for x in values)
        return f"median {statistics.median(values):.2f}  [per round: {each}]"

    print()
    print(
        f"cachestack_app cached hits, cluster mode (TLS, AUTH), 1 shard x 1 replica against "
        f"3 shards x 1 replica: wrk -t{args.threads} -c{args.connections} -d{args.duration}s "
        f"on 127.0.0.1, gunicorn {' '.join(gunicorn_args(args))}, {args.rounds} rounds "
        "alternating"
    )
    print_rounds(results)
    one, three, floor = results[ONE], results[THREE], results[FLOOR]
    print(
        f"req/s, 3 shards / 1 shard: "
        f"{rounds([t['rps'] / o['rps'] for t, o in zip(three, one, strict=True)])}"
    )
    print(
        f"p99, 3 shards / 1 shard: "
        f"{rounds([t['p99'] / o['p99'] for t, o in zip(three, one, strict=True)])}"
    )
    for name, rows in ((ONE, one), (THREE, three)):
        of_floor = [r["rps"] / f["rps"] for r, f in zip(rows, floor, strict=True)]
        print(f"{name}, req/s as a share of the floor's: {rounds(of_floor)}")
    print(
        f"The page is one key (hash tag {{{PAGE_HASH_TAG.decode()}}}, slot "
        f"{key_slot(PAGE_HASH_TAG)}): it lives on shard {owners[THREE]} of 3, so every hit "
        "goes to one primary whatever the cluster's size, and 3 shards cannot make this page "
        "faster; the ratio shows what the shape costs a hit."
    )
    if keys_results[ONE]:
        print()
        print(
            f"many keys: redis-py's cluster client, {KEYS_PROCESSES} processes, pipelines of "
            f"{KEYS_BATCH} GETs over {args.keys} random keys, {args.keys_seconds:g} s per "
            "round, alternating; keys per primary: "
            + ", ".join(f"{name} {value}" for name, value in spread.items())
        )
        for index in range(len(keys_results[ONE])):
            print(
                f"  r{index + 1}: "
                + ", ".join(
                    f"{name} {rows[index]:.0f} GETs/s" for name, rows in keys_results.items()
                )
            )
        medians = {name: statistics.median(rows) for name, rows in keys_results.items()}
        print(
            "  median: "
            + ", ".join(f"{name} {value:.0f} GETs/s" for name, value in medians.items())
        )
        ratios = [t / o for t, o in zip(keys_results[THREE], keys_results[ONE], strict=True)]
        print(f"  GETs/s, 3 shards / 1 shard: {rounds(ratios)}")
    print()
    print(
        f"machine: {os.cpu_count()} CPUs, 1-min load average {loads[0][0]:.1f} before, "
        f"{loads[1][0]:.1f} after (other load skews absolute figures; the ratio less so)"
    )


if __name__ == "__main__":
    main()
