"""The app keeps serving while its cache cluster reshards or fails over (issue 25, item 3),
against a real 3-shard x 1-replica Valkey 8 cluster (TLS, AUTH, cluster-node-timeout 1 s)
and PostgreSQL 17, the app in-process under a bounded request loop (count and time bounded,
no network: the WSGI app is called directly).

* The page key's slot moved to another primary, then to a new node the client has never
  seen (a new shard's primary), the slot held half-moved a moment each time so the client
  meets ASK as well as MOVED: every page 200 from the cache, the redirects counted by kind.
* The primary holding the page key's slot killed (SIGKILL): no 5xx, BYPASS while the slot
  has no primary, readiness 200 "degraded"; the replica promoted, pages HIT again without a
  restart, readiness "ok", the retries counted.

Run: ``.venv/bin/pytest -p no:xdist tests/integration/app/test_cluster_reshard_failover.py``
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from redis.cluster import key_slot
from werkzeug.test import Client

from tests.integration.app.conftest import ini
from tests.servers.redis import ShardedCluster, TLSCertificates, start_sharded_cluster

KEY = "cachestack:{slow_version}:v2"
SLOT = key_slot(KEY.encode())
# The loop's bounds: at most this many pages, for at most this long.
MAX_PAGES = 5000
MAX_SECONDS = 60.0


@pytest.fixture
def sharded(tls_certificates: TLSCertificates) -> Iterator[ShardedCluster]:
    """3 shards x 1 replica and one slotless spare node; the test's own (it kills nodes)."""
    with start_sharded_cluster(tls_certificates, shards=3, replicas=1, spares=1) as cluster:
        yield cluster


@pytest.fixture
def page_loop() -> Iterator[Any]:
    """``page_loop(app)`` starts a :class:`Pages` loop; stopped after the test, pass or fail."""
    loops: list[Pages] = []

    def start(app: Any) -> Pages:
        loop = Pages(Client(app))  # a client of its own: it runs in another thread
        loops.append(loop)
        loop.start()
        return loop

    yield start
    for loop in loops:
        loop.finish()


def counters() -> dict[str, float]:
    from cachestack_app import metrics

    values = {
        "moved": metrics.CACHE_REDIRECTS.labels("moved")._value.get(),
        "ask": metrics.CACHE_REDIRECTS.labels("ask")._value.get(),
        "retries": metrics.CACHE_RETRIES._value.get(),
        "bypasses": metrics.CACHE_BYPASSES._value.get(),
    }
    return values


def delta(before: dict[str, float]) -> dict[str, float]:
    now = counters()
    return {k: now[k] - before[k] for k in before}


class Pages(threading.Thread):
    """GET / in a loop until stopped, at most MAX_PAGES times and MAX_SECONDS long; keeps
    each page's status and X-Cache, in order."""

    def __init__(self, client: Any) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.stop = threading.Event()
        self.seen: list[tuple[int, str]] = []

    def run(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        while not self.stop.is_set() and len(self.seen) < MAX_PAGES:
            if time.monotonic() > deadline:
                break
            response = self.client.get("/")
            self.seen.append((response.status_code, response.headers.get("X-Cache", "")))
            time.sleep(0.005)

    def finish(self) -> list[tuple[int, str]]:
        self.stop.set()
        self.join(timeout=MAX_SECONDS)
        assert not self.is_alive()
        return self.seen


def owner_node(cluster: ShardedCluster, via: Any) -> Any:
    """The node ``via`` says is the online primary of the page's slot, or None."""
    port = cluster.owner(SLOT, via)
    return next((n for n in cluster.nodes if n.port == port), None)  # None: no primary


def move_slot(cluster: ShardedCluster, source: Any, target: Any, half_moved: float) -> None:
    """Move SLOT from source to target with the server's commands, as a reshard does:
    IMPORTING / MIGRATING, its keys MIGRATEd, then the new owner told to every primary.
    Between the keys moving and the owner changing, ``half_moved`` seconds in which a
    command for those keys gets ASK."""
    source_id, target_id = cluster.node_id(source), cluster.node_id(target)
    cluster.command(target, "CLUSTER SETSLOT", SLOT, "IMPORTING", source_id)
    cluster.command(source, "CLUSTER SETSLOT", SLOT, "MIGRATING", target_id)
    keys = cluster.command(source, "CLUSTER GETKEYSINSLOT", SLOT, 100)
    assert KEY in keys, keys  # the page's value moves with its slot
    cluster.command(
        source, "MIGRATE", target.host, target.port, "", 0, 5000,
        "AUTH", cluster.password, "KEYS", *keys,
    )  # fmt: skip
    time.sleep(half_moved)
    for node in (target, source, *cluster.primaries):
        cluster.command(node, "CLUSTER SETSLOT", SLOT, "NODE", target_id)


def wait_until(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)


def test_a_reshard_of_the_page_slot_serves_every_page_and_counts_redirects(
    app_db, sharded, make_app, page_loop
):
    source = owner_node(sharded, sharded.primaries[0])
    other = next(p for p in sharded.primaries if p is not source)
    spare = sharded.spares[0]
    app, client = make_app(ini(app_db, sharded.primaries[0], cluster=True))
    assert client.get("/").headers["X-Cache"] == "MISS"
    assert client.get("/").headers["X-Cache"] == "HIT"
    before = counters()

    pages = page_loop(app)
    time.sleep(0.3)
    move_slot(sharded, source, other, half_moved=0.5)  # to a primary the client knows
    wait_until(lambda: owner_node(sharded, spare) is other, 10, "the spare sees the move")
    time.sleep(0.3)
    move_slot(sharded, other, spare, half_moved=0.5)  # to a node it has never seen
    time.sleep(0.5)
    seen = pages.finish()

    outcomes = Counter(seen)
    assert len(seen) > 50, outcomes
    # Zero failed pages, and every one from the cache: the value moved with its slot.
    assert set(outcomes) == {(200, "HIT")}, outcomes
    counted = delta(before)
    print(f"reshard: pages {dict(outcomes)}, counted {counted}")
    assert counted["moved"] >= 2, counted  # one per move at least
    assert counted["ask"] >= 2, counted  # the half-moved moments
    assert counted["bypasses"] == 0, counted
    assert owner_node(sharded, sharded.primaries[0]) is spare
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200 and ready.json["status"] == "ok", ready.json
    metrics_text = client.get("/metrics").get_data(as_text=True)
    assert 'cachestack_cache_redirects_total{kind="ask"}' in metrics_text


def test_a_dead_primary_gives_bypass_then_hit_after_its_replica_takes_over(
    app_db, sharded, make_app, page_loop
):
    dead = owner_node(sharded, sharded.primaries[0])
    shard = sharded.primaries.index(dead)
    replica = sharded.replicas[shard][0]
    witness = next(p for p in sharded.primaries if p is not dead)
    # The app's configured node is the one that dies: the client must find the cluster
    # through the nodes it knew.
    app, client = make_app(ini(app_db, dead, cluster=True))
    assert client.get("/").headers["X-Cache"] == "MISS"
    assert client.get("/").headers["X-Cache"] == "HIT"
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200 and ready.json == {
        "status": "ok",
        "postgresql": "ok",
        "redis": "ok",
    }
    before = counters()

    pages = page_loop(app)
    time.sleep(0.3)
    killed_at = time.monotonic()
    dead.kill()
    readiness: list[tuple[int, str, str]] = []

    def promoted_and_hit() -> bool:
        ready = client.get("/healthz/ready")
        readiness.append((ready.status_code, ready.json["status"], ready.json["redis"]))
        if owner_node(sharded, witness) is not replica:
            return False
        return bool(pages.seen) and pages.seen[-1] == (200, "HIT")

    wait_until(promoted_and_hit, 30, "the replica promoted and the page HIT again")
    took_over = time.monotonic() - killed_at
    time.sleep(1.0)
    seen = pages.finish()

    outcomes = Counter(seen)
    assert {status for status, _outcome in seen} == {200}, outcomes  # zero 5xx
    assert outcomes[(200, "BYPASS")] > 0, outcomes  # while the slot had no primary
    assert set(outcomes) <= {(200, "HIT"), (200, "BYPASS"), (200, "MISS")}, outcomes
    first_bypass = seen.index((200, "BYPASS"))
    last_bypass = len(seen) - 1 - seen[::-1].index((200, "BYPASS"))
    assert seen[last_bypass + 1 :] and set(seen[last_bypass + 1 :]) <= {(200, "HIT")}, seen[-20:]
    assert first_bypass > 0 and seen[:first_bypass] == [(200, "HIT")] * first_bypass
    print(f"failover: HIT again {took_over:.1f} s after the kill; pages {dict(outcomes)}")
    assert took_over < 15, took_over
    counted = delta(before)
    print(f"failover: counted {counted}; readiness {Counter(r[1] for r in readiness)}")
    assert counted["bypasses"] == outcomes[(200, "BYPASS")], counted
    assert counted["retries"] >= 1, counted
    # Readiness: 200 throughout, degraded while the slot had no primary, ok after.
    assert {code for code, _status, _redis in readiness} == {200}, readiness
    assert "degraded" in {status for _code, status, _redis in readiness}, readiness
    after = client.get("/healthz/ready")
    assert after.status_code == 200 and after.json["status"] == "ok", after.json
    assert sharded.password not in str(readiness)


def test_another_shard_down_leaves_the_page_hit_and_readiness_degraded(
    app_db, sharded, make_app, page_loop
):
    """A primary that does not hold the page's slot killed: a partial failure the page does
    not touch. Readiness says degraded (and why) but must not open the breaker: every page
    stays HIT. After its replica takes over, readiness is ok again.

    With cluster-require-full-coverage yes (the sandbox's, and the servers' default) every
    node refuses every key while one slot has no primary, so pages would BYPASS for that
    second whatever the app does: turned off here, so that only the app could fail them."""
    for node in sharded.nodes:
        sharded.command(node, "CONFIG SET", "cluster-require-full-coverage", "no")
    holder = owner_node(sharded, sharded.primaries[0])
    dead = next(p for p in sharded.primaries if p is not holder)
    replica = sharded.replicas[sharded.primaries.index(dead)][0]
    dead_slot = 16384 * sharded.primaries.index(dead) // len(sharded.primaries)
    app, client = make_app(ini(app_db, holder, cluster=True))
    assert client.get("/").headers["X-Cache"] == "MISS"
    before = counters()
    pages = page_loop(app)
    time.sleep(0.3)
    dead.kill()
    readiness: list[tuple[int, str, str]] = []

    def replica_took_over() -> bool:
        ready = client.get("/healthz/ready")
        readiness.append((ready.status_code, ready.json["status"], ready.json["redis"]))
        return sharded.owner(dead_slot, holder) == replica.port and ready.json["status"] == "ok"

    wait_until(replica_took_over, 30, "the replica promoted and readiness ok again")
    seen = pages.finish()

    outcomes = Counter(seen)
    print(f"other shard down: pages {dict(outcomes)}; readiness {Counter(readiness)}")
    assert len(seen) > 50 and set(outcomes) == {(200, "HIT")}, outcomes
    assert delta(before)["bypasses"] == 0
    assert {code for code, _status, _redis in readiness} == {200}, readiness
    degraded = [redis for _code, status, redis in readiness if status == "degraded"]
    assert degraded, readiness
    assert all(r.startswith("degraded: ") for r in degraded), degraded
    assert any("primaries do not answer" in r or "cluster_state" in r for r in degraded), degraded
    assert readiness[-1] == (200, "ok", "ok")
