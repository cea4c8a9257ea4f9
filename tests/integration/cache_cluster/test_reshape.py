"""cachestack.aws.valkey_cluster reshaping a formed cluster online, against real nodes
(Valkey 8.1 and Redis OSS 8.0; TLS, AUTH), through ansible-playbook: 1 -> 3 -> 2 shards with
keys written before still readable after (and read all along by a cluster client, which
follows the ASK and MOVED redirects), a move left half done finished by the next run, and
fewer replicas. Every rerun changes nothing.

The ports keep their shard across shapes, as the sandbox's layout does: shard k's nodes are
nodes[2k] (its primary) and nodes[2k + 1] (its replica); the module takes the primaries
first.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from tests.integration.cache_cluster.conftest import Nodes

KEYS = 300


def shape_ports(nodes: Nodes, shards: int) -> list[int]:
    ports = nodes.ports
    return [ports[2 * k] for k in range(shards)] + [ports[2 * k + 1] for k in range(shards)]


def cluster_client(nodes: Nodes) -> RedisCluster:
    return RedisCluster(
        host="127.0.0.1",
        port=nodes.ports[0],
        password=nodes.token,
        ssl=True,
        ssl_ca_certs=str(nodes.certs.ca_file),
        decode_responses=True,
        socket_timeout=5,
    )


def ranges(shards: int) -> list[list[int]]:
    return [[16384 * k // shards, 16384 * (k + 1) // shards - 1] for k in range(shards)]


def owned(nodes: Nodes, index: int) -> list[list[int]]:
    return [[int(a), int(b)] for a, b in nodes.myself(nodes.nodes[index])["slots"]]


def info(nodes: Nodes, index: int) -> dict[str, Any]:
    return nodes.command(nodes.nodes[index], "CLUSTER INFO")


class Reader(threading.Thread):
    """Reads the keys through a cluster client while a run reshapes the cluster: every
    value must come back, none may fail. Bounded by count and time."""

    def __init__(self, nodes: Nodes, keys: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.client = cluster_client(nodes)
        self.keys = keys
        self.stop = threading.Event()
        self.reads = 0
        self.errors: list[str] = []
        self.client_faults: list[str] = []

    def read(self, key: str) -> str | None:
        # redis-py 8.1's RedisCluster follows an ASK to a node only if its table knows that
        # node already: a new shard's primary it has not seen yet gives AttributeError
        # ('NoneType' ... 'redis_connection'), a client fault, not the cluster's. Counted,
        # the client's table read again (CLUSTER SLOTS) and the read retried, at most 10
        # times over about 2 s: the key must be read by then.
        for _attempt in range(10):
            try:
                return self.client.get(key)
            except AttributeError as exc:
                self.client_faults.append(repr(exc))
                time.sleep(0.2)
                self.client.nodes_manager.initialize()
        return self.client.get(key)

    def run(self) -> None:
        deadline = time.monotonic() + 300
        try:
            while not self.stop.is_set() and self.reads < 2_000_000 and time.monotonic() < deadline:
                for key, value in list(self.keys.items())[::7]:
                    try:
                        got = self.read(key)
                    except (redis.RedisError, OSError, AttributeError) as exc:
                        self.errors.append(f"{key}: {exc!r}")
                        continue
                    self.reads += 1
                    if got != value:
                        self.errors.append(f"{key}: read {got!r}, wrote {value!r}")
        except Exception as exc:  # pylint: disable=broad-exception-caught  # a dead reader fails
            self.errors.append(f"the reader died: {exc!r}")
        finally:
            self.client.close()


def reshape_under_reads(nodes: Nodes, keys: dict[str, str], **args: Any) -> Any:
    reader = Reader(nodes, keys)
    reader.start()
    try:
        time.sleep(0.5)
        started = time.monotonic()
        run = nodes.run(diff=True, **args)
        print(f"reshape to {args['shards']} shards: {time.monotonic() - started:.1f} s")
    finally:
        reader.stop.set()
        reader.join(30)
    print(f"  {reader.reads} reads, client faults retried: {len(reader.client_faults)}")
    assert reader.reads > 0
    assert reader.errors == [], reader.errors[:5]
    return run


def all_keys_read_back(nodes: Nodes, keys: dict[str, str]) -> None:
    client = cluster_client(nodes)
    try:
        assert {k: client.get(k) for k in keys} == keys
    finally:
        client.close()


# Valkey only (the engine the stack ships): moving every slot twice takes 3 to 5 minutes
# per engine, and the module's commands are the same on Redis OSS 8, which the replica
# test below and the formation tests cover.
@pytest.mark.parametrize("make_nodes", ["valkey"], indirect=True)
def test_one_to_three_to_two_shards_keeps_the_keys(make_nodes: Any) -> None:
    nodes = make_nodes(6)
    formed = nodes.run(ports=shape_ports(nodes, 1), shards=1, replicas_per_shard=1)
    assert not formed.failed and formed.changed, formed.result.get("msg", formed.result)
    keys = {f"key:{i}": f"value {i}" for i in range(KEYS)}
    # An awkward key name: spaces, a newline, quotes, a byte that is not UTF-8 text.
    client = cluster_client(nodes)
    try:
        for key, value in keys.items():
            client.set(key, value)
    finally:
        client.close()
    raw = redis.Redis(
        host="127.0.0.1",
        port=nodes.ports[0],
        password=nodes.token,
        ssl=True,
        ssl_ca_certs=str(nodes.certs.ca_file),
    )
    odd = b'odd "key"\n\xff end'
    raw.set(odd, b"odd value")
    raw.close()

    # The plan: moves, no change.
    three = shape_ports(nodes, 3)
    plan = nodes.run(check=True, diff=True, ports=three, shards=3, replicas_per_shard=1)
    assert not plan.failed and plan.changed, plan.result.get("msg", plan.result)
    assert [
        (a["action"], a["port"], a.get("slots"))
        for a in plan.result["actions"]
        if a["action"] == "move"
    ] == [
        ("move", nodes.ports[0], [5461, 10921]),
        ("move", nodes.ports[0], [10922, 16383]),
    ]
    assert plan.result["diff"]["before"][str(nodes.ports[0])] == "primary 0-16383"
    assert owned(nodes, 0) == [[0, 16383]]  # check mode moved nothing

    up = reshape_under_reads(nodes, keys, ports=three, shards=3, replicas_per_shard=1)
    assert not up.failed and up.changed, up.result.get("msg", up.result)
    assert up.result["cluster_info"]["cluster_state"] == "ok"
    for shard, rng in enumerate(ranges(3)):
        assert owned(nodes, 2 * shard) == [rng]
        replica = nodes.myself(nodes.nodes[2 * shard + 1])
        assert replica["master_id"] == nodes.myself(nodes.nodes[2 * shard])["node_id"]
    for index in range(6):
        assert (info(nodes, index)["cluster_state"], str(info(nodes, index)["cluster_size"])) == (
            "ok",
            "3",
        )
    all_keys_read_back(nodes, keys)
    # The keys are where their slots are now: some on every primary.
    for shard in range(3):
        assert nodes.command(nodes.nodes[2 * shard], "DBSIZE") > 0
    again = nodes.run(ports=three, shards=3, replicas_per_shard=1)
    assert not again.failed and not again.changed, again.result

    # A move left half done, as a killed run leaves it: a slot of shard 2 importing on
    # shard 1's primary and migrating on shard 2's, one of its keys moved already.
    src, dst = nodes.nodes[4], nodes.nodes[2]
    src_id, dst_id = nodes.myself(src)["node_id"], nodes.myself(dst)["node_id"]
    moving = next(k for k in keys if redis.cluster.key_slot(k.encode()) >= 10922)
    slot = redis.cluster.key_slot(moving.encode())
    slot_keys = [moving]
    nodes.command(dst, "CLUSTER SETSLOT", slot, "IMPORTING", src_id)
    nodes.command(src, "CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
    nodes.command(
        src,
        "MIGRATE",
        "127.0.0.1",
        dst.port,
        "",
        0,
        5000,
        "AUTH2",
        "default",
        nodes.token,
        "KEYS",
        slot_keys[0],
    )

    two = shape_ports(nodes, 2)
    down = reshape_under_reads(nodes, keys, ports=two, shards=2, replicas_per_shard=1)
    assert not down.failed and down.changed, down.result.get("msg", down.result)
    finished = [
        a for a in down.result["actions"] if a["action"] == "move" and a["slots"] == [slot, slot]
    ]
    assert finished and "finish moving" in finished[0]["description"]
    assert sorted(down.result["removed"]) == sorted(nodes.ports[4:6])
    assert owned(nodes, 0) == [ranges(2)[0]] and owned(nodes, 2) == [ranges(2)[1]]
    for index in range(4):
        assert (
            info(nodes, index)["cluster_state"],
            str(info(nodes, index)["cluster_known_nodes"]),
            str(info(nodes, index)["cluster_size"]),
        ) == ("ok", "4", "2")
    for index in (4, 5):  # reset: each knows itself only, holds nothing
        assert str(info(nodes, index)["cluster_known_nodes"]) == "1"
        assert nodes.command(nodes.nodes[index], "DBSIZE") == 0
    all_keys_read_back(nodes, keys)
    raw = redis.Redis(
        host="127.0.0.1",
        port=nodes.ports[2],
        password=nodes.token,
        ssl=True,
        ssl_ca_certs=str(nodes.certs.ca_file),
    )
    try:
        assert raw.get(odd) == b"odd value"  # slot 8192+: shard 1's
    finally:
        raw.close()
    last = nodes.run(ports=two, shards=2, replicas_per_shard=1)
    assert not last.failed and not last.changed, last.result

    for run in (formed, plan, up, again, down, last):
        assert nodes.token not in run.stdout + run.stderr


def test_fewer_replicas_removes_the_surplus(make_nodes: Any) -> None:
    nodes = make_nodes(3)
    p, r1, r2 = nodes.ports
    formed = nodes.run(ports=[p, r1, r2], shards=1, replicas_per_shard=2)
    assert not formed.failed and formed.changed, formed.result.get("msg", formed.result)
    client = cluster_client(nodes)
    try:
        client.set("kept", "yes")
    finally:
        client.close()
    fewer = nodes.run(diff=True, ports=[p, r1], shards=1, replicas_per_shard=1)
    assert not fewer.failed and fewer.changed, fewer.result.get("msg", fewer.result)
    assert [(a["action"], a["port"]) for a in fewer.result["actions"]] == [
        ("forget", p),
        ("forget", r1),
        ("reset", r2),
    ]
    assert fewer.result["diff"]["before"][str(r2)] == f"replica of {p}"
    assert fewer.result["diff"]["after"][str(r2)] == "removed"
    assert fewer.result["removed"] == [r2]
    for index in (0, 1):
        assert str(info(nodes, index)["cluster_known_nodes"]) == "2"
        assert info(nodes, index)["cluster_state"] == "ok"
    assert str(info(nodes, 2)["cluster_known_nodes"]) == "1"
    assert "master" in nodes.myself(nodes.nodes[2])["flags"]
    assert nodes.myself(nodes.nodes[1])["master_id"] == nodes.myself(nodes.nodes[0])["node_id"]
    all_keys_read_back(nodes, {"kept": "yes"})
    again = nodes.run(ports=[p, r1], shards=1, replicas_per_shard=1)
    assert not again.failed and not again.changed, again.result
