"""Unit tests for plugins/module_utils/_cluster_topology.py, the pure logic of
cachestack.aws.valkey_cluster: the CLUSTER NODES and CONFIG GET parsers (on output of real
Valkey 8.1 and Redis OSS 8.0 nodes) and the planner, for every topology change it handles
or refuses. No server needed (tests/integration/cache_cluster runs the module against real
nodes).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / ".collections"
if str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.cachestack.aws.plugins.module_utils import (  # noqa: E402
    _cluster_topology as ct,
)

# Real output, from the nodes of tests/servers/redis.py (valkey-server 8.1, TLS, AUTH),
# read with the cli: a primary and its replica, a new node, and the primary's view a few
# seconds after the replica's CLUSTER RESET HARD (the old id, without an address).
VALKEY_PRIMARY = (
    "5199dad02ab46599f459095a67014cc0681b9e8a 127.0.0.1:57895@38235 myself,master - 0 0 1"
    " connected 0-16383\n"
    "f5a17e403c406086c7883a5b74dfb6bb1823b0f3 127.0.0.1:53845@38527 slave"
    " 5199dad02ab46599f459095a67014cc0681b9e8a"
    " 0 1796504611484 1 connected\n"
)
VALKEY_REPLICA = (
    "f5a17e403c406086c7883a5b74dfb6bb1823b0f3 127.0.0.1:53845@38527 myself,slave"
    " 5199dad02ab46599f459095a67014cc0681b9e8a 0 0 1 connected\n"
    "5199dad02ab46599f459095a67014cc0681b9e8a 127.0.0.1:57895@38235 master - 0 1796504611687"
    " 1 connected 0-16383\n"
)
VALKEY_FRESH = (
    "336ac587d6f269b737b0a2c437229766cf5f5dfe :56929@38631 myself,master - 0 0 0 connected\n"
)
VALKEY_PRIMARY_AFTER_REPLICA_RESET = (
    "5199dad02ab46599f459095a67014cc0681b9e8a 127.0.0.1:57895@38235 myself,master - 0 0 1"
    " connected 0-16383\n"
    "f5a17e403c406086c7883a5b74dfb6bb1823b0f3 :0@0 slave,fail,noaddr"
    " 5199dad02ab46599f459095a67014cc0681b9e8a"
    " 1796504612289 1796504611484 1 disconnected\n"
)
# The replica's own view after that reset: a new id, alone.
VALKEY_REPLICA_AFTER_RESET = (
    "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c :53845@38527 myself,master - 0 0 0 connected\n"
)
REDIS_PRIMARY = (
    "5d0fac36538ed9c3180d7a8053963f291fb50803 127.0.0.1:56509@48045 myself,master - 0 0 1"
    " connected 0-16383\n"
    "faad3db8fecaed012203883adb70842fb8e43290 127.0.0.1:53177@49343 slave"
    " 5d0fac36538ed9c3180d7a8053963f291fb50803"
    " 0 1796504621716 1 connected\n"
)
REDIS_PRIMARY_AFTER_REPLICA_RESET = (
    "5d0fac36538ed9c3180d7a8053963f291fb50803 127.0.0.1:56509@48045 myself,master - 0 0 1"
    " connected 0-16383\n"
    "faad3db8fecaed012203883adb70842fb8e43290 :0@0 slave,noaddr"
    " 5d0fac36538ed9c3180d7a8053963f291fb50803"
    " 1796504622523 1796504621716 1 disconnected\n"
)
# Nodes that announce a hostname (cluster-announce-hostname, as the sandbox's do), Valkey 8.1.
HOSTNAME_PRIMARY = (
    "c57595a91f2a671e0da5321a5518ab64d6e2afcc 127.0.0.1:57169@44773,cachestack-cache"
    " myself,master - 0 0 0 connected 0-16383\n"
    "c4fc50331737cc51fba32bc02be373b903c2e0bc 127.0.0.1:38683@60077,cachestack-cache slave"
    " c57595a91f2a671e0da5321a5518ab64d6e2afcc 0 1796504885961 0 connected\n"
)
HOSTNAME_REPLICA = (
    "c57595a91f2a671e0da5321a5518ab64d6e2afcc 127.0.0.1:57169@44773,cachestack-cache"
    " master - 0 1796504886276 0 connected 0-16383\n"
    "c4fc50331737cc51fba32bc02be373b903c2e0bc 127.0.0.1:38683@60077,cachestack-cache"
    " myself,slave c57595a91f2a671e0da5321a5518ab64d6e2afcc 0 0 0 connected\n"
)
CONFIG_GET_VALKEY = "maxmemory\n0\nappendonly\nno\nsave\n\n"
CONFIG_GET_REDIS = "appendonly\nno\nsave\n\nmaxmemory\n0\n"


def test_parse_real_valkey_views() -> None:
    primary, replica = ct.parse_cluster_nodes(VALKEY_PRIMARY)
    assert primary.myself and primary.is_primary and not primary.is_replica
    assert (primary.node_id, primary.ip, primary.port, primary.cport) == (
        "5199dad02ab46599f459095a67014cc0681b9e8a",
        "127.0.0.1",
        57895,
        38235,
    )
    assert primary.slots == ((0, 16383),) and primary.primary_id is None and primary.epoch == 1
    assert replica.is_replica and not replica.myself and replica.primary_id == primary.node_id
    assert replica.slots == () and replica.link == "connected" and not replica.gone
    (fresh,) = ct.parse_cluster_nodes(VALKEY_FRESH)
    assert fresh.myself and fresh.ip == "" and fresh.port == 56929 and fresh.cport == 38631
    _me, gone = ct.parse_cluster_nodes(VALKEY_PRIMARY_AFTER_REPLICA_RESET)
    assert gone.gone and gone.port == 0 and gone.flags == ("slave", "fail", "noaddr")


def test_parse_real_redis_views_and_hostname_and_slot_forms() -> None:
    _me, gone = ct.parse_cluster_nodes(REDIS_PRIMARY_AFTER_REPLICA_RESET)
    assert gone.gone and gone.flags == ("slave", "noaddr")
    primary, replica = ct.parse_cluster_nodes(REDIS_PRIMARY)
    assert primary.myself and primary.slots == ((0, 16383),) and primary.cport == 48045
    assert replica.is_replica and replica.primary_id == primary.node_id
    _primary, replica = ct.parse_cluster_nodes(HOSTNAME_PRIMARY)
    assert (replica.port, replica.cport, replica.hostname) == (38683, 60077, "cachestack-cache")
    # Later versions may add aux fields (shard-id=...) after the hostname.
    line = HOSTNAME_REPLICA.splitlines()[1].replace(
        ",cachestack-cache", ",cachestack-cache,shard-id=69bc"
    )
    (node,) = ct.parse_cluster_nodes(line)
    assert (node.port, node.hostname, node.myself) == (38683, "cachestack-cache", True)
    line = (
        "a" * 40
        + " 127.0.0.1:7000@17000 myself,master - 0 0 2 connected 0-5 7 6 9-10 [11->-"
        + "b" * 40
        + "]\n"
    )
    (node,) = ct.parse_cluster_nodes(line)
    assert node.slots == ((0, 7), (9, 10))  # merged; a slot being migrated is not counted twice


def test_parse_rejects_garbage() -> None:
    with pytest.raises(ct.TopologyError, match="line 1 is not a node"):
        ct.parse_cluster_nodes("ERR This instance has cluster support disabled\n")


@pytest.mark.parametrize("text", [CONFIG_GET_VALKEY, CONFIG_GET_REDIS])
def test_parse_config_get_any_order_empty_value(text: str) -> None:
    assert ct.parse_config_get(text) == {"maxmemory": "0", "appendonly": "no", "save": ""}


def test_parse_cluster_info() -> None:
    info = ct.parse_cluster_info("cluster_state:ok\r\ncluster_known_nodes:2\r\ncluster_size:1\r\n")
    assert info == {"cluster_state": "ok", "cluster_known_nodes": "2", "cluster_size": "1"}


# --- a small cluster simulator: node views as the servers print them --------------------


def nid(port: int, generation: int = 0) -> str:
    return f"{port:05d}{generation:03d}".ljust(40, "0")


class Node:
    def __init__(self, port: int, generation: int = 0):
        self.port = port
        self.id = nid(port, generation)
        self.primary: str | None = None
        self.slots: list[tuple[int, int]] = []
        self.known: dict[str, Node | str] = {}  # id -> Node, or a literal line for a gone node

    def line(self, of: Node, me: bool) -> str:
        role = "slave" if of.primary else "master"
        flags = f"myself,{role}" if me else role
        slots = " ".join(f"{a}-{b}" for a, b in of.slots)
        address = f"127.0.0.1:{of.port}@{of.port + 10000}"
        line = f"{of.id} {address} {flags} {of.primary or '-'} 0 0 1 connected {slots}"
        return line.strip()

    def view(self) -> str:
        lines = [self.line(self, True)]
        for other in self.known.values():
            lines.append(other if isinstance(other, str) else self.line(other, False))
        return "\n".join(lines) + "\n"


def formed(ports: list[int], shards: int) -> dict[int, Node]:
    """A converged cluster of the shape: everyone knows everyone."""
    nodes = {p: Node(p) for p in ports}
    shape = ct.Shape(ports, shards, len(ports) // shards - 1)
    for k in range(shards):
        members = shape.members(k)
        nodes[members[0]].slots = [shape.slot_range(k)]
        for p in members[1:]:
            nodes[p].primary = nodes[members[0]].id
    for a in nodes.values():
        a.known = {b.id: b for b in nodes.values() if b is not a}
    return nodes


def views(nodes: dict[int, Node]) -> dict[int, str]:
    return {p: n.view() for p, n in nodes.items()}


def kinds(plan: ct.Plan) -> list[tuple]:
    return [(a.kind, a.port, a.target_port, a.slots, a.node_id) for a in plan.actions]


def test_fresh_nodes_meet_slots_replicas() -> None:
    ports = [6379, 6380, 6381, 6382, 6383, 6384]
    nodes = {p: Node(p) for p in ports}
    plan = ct.plan(ct.Shape(ports, 3, 1), views(nodes))
    assert kinds(plan) == [
        ("meet", 6379, 6380, None, nid(6380)),
        ("meet", 6379, 6381, None, nid(6381)),
        ("meet", 6379, 6382, None, nid(6382)),
        ("meet", 6379, 6383, None, nid(6383)),
        ("meet", 6379, 6384, None, nid(6384)),
        ("addslots", 6379, None, (0, 5460), None),
        ("addslots", 6380, None, (5461, 10921), None),
        ("addslots", 6381, None, (10922, 16383), None),
        ("replicate", 6382, 6379, None, nid(6379)),
        ("replicate", 6383, 6380, None, nid(6380)),
        ("replicate", 6384, 6381, None, nid(6381)),
    ]
    assert [a.bus_port for a in plan.actions[:5]] == [16380, 16381, 16382, 16383, 16384]
    assert plan.changed
    assert plan.before == {str(p): "primary without slots" for p in ports}
    assert plan.after == {
        "6379": "primary 0-5460",
        "6380": "primary 5461-10921",
        "6381": "primary 10922-16383",
        "6382": "replica of 6379",
        "6383": "replica of 6380",
        "6384": "replica of 6381",
    }


def test_fresh_one_by_one_from_real_output() -> None:
    fresh_primary = VALKEY_FRESH
    fresh_replica = VALKEY_REPLICA_AFTER_RESET
    plan = ct.plan(ct.Shape([56929, 53845], 1, 1), {56929: fresh_primary, 53845: fresh_replica})
    assert [(a.kind, a.port, a.target_port, a.bus_port, a.slots) for a in plan.actions] == [
        ("meet", 56929, 53845, 38527, None),
        ("addslots", 56929, None, None, (0, 16383)),
        ("replicate", 53845, 56929, None, None),
    ]


@pytest.mark.parametrize("shape", [(1, 0), (1, 1), (1, 2), (3, 1), (2, 2)])
def test_converged_gives_no_action(shape: tuple[int, int]) -> None:
    shards, replicas = shape
    ports = list(range(7000, 7000 + shards * (1 + replicas)))
    nodes = formed(ports, shards)
    plan = ct.plan(ct.Shape(ports, shards, replicas), views(nodes))
    assert plan.actions == [] and not plan.changed
    assert plan.before == plan.after


def test_converged_real_output_gives_no_action() -> None:
    plan = ct.plan(ct.Shape([57895, 53845], 1, 1), {57895: VALKEY_PRIMARY, 53845: VALKEY_REPLICA})
    assert plan.actions == []
    assert plan.after == {"57895": "primary 0-16383", "53845": "replica of 57895"}
    views = {57169: HOSTNAME_PRIMARY, 38683: HOSTNAME_REPLICA}
    assert ct.plan(ct.Shape([57169, 38683], 1, 1), views).actions == []


def test_replica_reset_hard_rejoins_as_replica_and_old_id_is_forgotten() -> None:
    # Real output: the primary still lists the replica's old id (:0@0 noaddr).
    plan = ct.plan(
        ct.Shape([57895, 53845], 1, 1),
        {57895: VALKEY_PRIMARY_AFTER_REPLICA_RESET, 53845: VALKEY_REPLICA_AFTER_RESET},
    )
    assert [(a.kind, a.port, a.target_port, a.node_id) for a in plan.actions] == [
        ("forget", 57895, None, "f5a17e403c406086c7883a5b74dfb6bb1823b0f3"),
        ("meet", 57895, 53845, "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"),
        ("replicate", 53845, 57895, "5199dad02ab46599f459095a67014cc0681b9e8a"),
    ]
    assert plan.before == {"57895": "primary 0-16383", "53845": "primary without slots"}
    assert plan.after == {"57895": "primary 0-16383", "53845": "replica of 57895"}


def test_node_that_lost_its_config_in_a_larger_cluster_rejoins_its_shard() -> None:
    ports = [7000, 7001, 7002, 7003]  # 2 shards: 7002 follows 7000, 7003 follows 7001
    nodes = formed(ports, 2)
    old = nodes[7003].id
    new = Node(7003, generation=1)  # a new id, knows nobody, no slots
    nodes[7003] = new
    gone_line = f"{old} :0@0 slave,fail,noaddr {nodes[7001].id} 1 1 1 disconnected"
    for p in (7000, 7001, 7002):
        nodes[p].known[old] = gone_line
    plan = ct.plan(ct.Shape(ports, 2, 1), views(nodes))
    assert kinds(plan) == [
        ("forget", 7000, None, None, old),
        ("forget", 7001, None, None, old),
        ("forget", 7002, None, None, old),
        ("meet", 7000, 7003, None, new.id),
        ("replicate", 7003, 7001, None, nodes[7001].id),
    ]


def test_primary_that_lost_its_config_rejoins_as_replica_after_its_replica_took_over() -> None:
    # A 1x1 cluster cannot fail over by itself (no other primary votes): the replica
    # takes the slots over, the old id is forgotten, the reset node follows it.
    ports = [7000, 7001]
    nodes = formed(ports, 1)
    old = nodes[7000].id
    nodes[7000] = Node(7000, generation=1)
    nodes[7001].known = {old: f"{old} :0@0 master,fail,noaddr - 1 1 1 disconnected 0-16383"}
    plan = ct.plan(ct.Shape(ports, 1, 1), views(nodes))
    assert kinds(plan) == [
        ("takeover", 7001, None, None, old),
        ("forget", 7001, None, None, old),
        ("meet", 7000, 7001, None, nodes[7001].id),
        ("replicate", 7000, 7001, None, nodes[7001].id),
    ]
    assert plan.after == {"7000": "replica of 7001", "7001": "primary 0-16383"}


def test_primary_lost_without_replica_gets_its_slots_again() -> None:
    ports = [7000, 7001]  # 2 shards, no replicas: shard 1's node lost its config
    nodes = formed(ports, 2)
    old = nodes[7001].id
    nodes[7001] = Node(7001, generation=1)
    nodes[7000].known = {old: f"{old} :0@0 master,fail,noaddr - 1 1 1 disconnected 8192-16383"}
    plan = ct.plan(ct.Shape(ports, 2, 0), views(nodes))
    assert kinds(plan) == [
        ("forget", 7000, None, None, old),
        ("meet", 7000, 7001, None, nodes[7001].id),
        ("addslots", 7001, None, (8192, 16383), None),
    ]


def test_replica_detached_is_reattached() -> None:
    # CLUSTER RESET SOFT on a replica: same id, an empty primary that knows nobody; the
    # others still know its id. It is met again (it does not know the first node) and
    # attached again.
    ports = [7000, 7001]
    nodes = formed(ports, 1)
    nodes[7001].primary = None
    nodes[7001].known = {}
    plan = ct.plan(ct.Shape(ports, 1, 1), views(nodes))
    assert kinds(plan) == [
        ("meet", 7000, 7001, None, nodes[7001].id),
        ("replicate", 7001, 7000, None, nodes[7000].id),
    ]


def test_replica_following_another_shard_is_moved_back() -> None:
    ports = [7000, 7001, 7002, 7003]
    nodes = formed(ports, 2)
    nodes[7003].primary = nodes[7000].id  # should follow 7001
    plan = ct.plan(ct.Shape(ports, 2, 1), views(nodes))
    assert kinds(plan) == [("replicate", 7003, 7001, None, nodes[7001].id)]


def test_after_a_failover_nothing_is_done() -> None:
    ports = [7000, 7001, 7002, 7003]
    nodes = formed(ports, 2)
    # Shard 0: 7002 was promoted, 7000 came back as its replica.
    nodes[7002].primary, nodes[7002].slots = None, nodes[7000].slots
    nodes[7000].primary, nodes[7000].slots = nodes[7002].id, []
    plan = ct.plan(ct.Shape(ports, 2, 1), views(nodes))
    assert plan.actions == []
    assert plan.after["7002"] == "primary 0-8191" and plan.after["7000"] == "replica of 7002"


def test_a_second_replica_joins() -> None:
    ports = [7000, 7001, 7002]
    nodes = formed([7000, 7001], 1)
    nodes[7002] = Node(7002)
    plan = ct.plan(ct.Shape(ports, 1, 2), views(nodes))
    assert kinds(plan) == [
        ("meet", 7000, 7002, None, nodes[7002].id),
        ("replicate", 7002, 7000, None, nodes[7000].id),
    ]


def test_partly_formed_cluster_finishes() -> None:
    # An earlier run stopped after the meets and the first shard's slots.
    ports = [7000, 7001, 7002, 7003]
    nodes = {p: Node(p) for p in ports}
    for a in nodes.values():
        a.known = {b.id: b for b in nodes.values() if b is not a}
    nodes[7000].slots = [(0, 8191)]
    plan = ct.plan(ct.Shape(ports, 2, 1), views(nodes))
    assert kinds(plan) == [
        ("addslots", 7001, None, (8192, 16383), None),
        ("replicate", 7002, 7000, None, nodes[7000].id),
        ("replicate", 7003, 7001, None, nodes[7001].id),
    ]


def test_a_node_that_does_not_answer_is_a_clear_error() -> None:
    nodes = formed([7000, 7001], 1)
    answers: dict[int, object] = views(nodes)
    answers[7001] = RuntimeError("Could not connect to Redis at 127.0.0.1:7001: Connection refused")
    with pytest.raises(
        ct.TopologyError,
        match=r"did not answer CLUSTER NODES: port 7001: Could not connect.*refused",
    ):
        ct.plan(ct.Shape([7000, 7001], 1, 1), answers)
    with pytest.raises(ct.TopologyError, match="port 7001: no answer"):
        ct.plan(ct.Shape([7000, 7001], 1, 1), {7000: answers[7000]})


def test_shards_changed_on_a_formed_cluster_is_refused_naming_the_settings() -> None:
    nodes = formed([7000, 7001], 1)
    nodes[7002], nodes[7003] = Node(7002), Node(7003)
    with pytest.raises(ct.TopologyError) as caught:
        ct.plan(ct.Shape([7000, 7001, 7002, 7003], 2, 1), views(nodes))
    message = str(caught.value)
    assert "node 7000 holds slots 0-16383, but shards=2 gives 0-8191 8192-16383" in message
    assert "not supported yet" in message and "sandbox_cache_shards" in message


def test_fewer_replicas_on_a_formed_cluster_is_refused_naming_the_settings() -> None:
    nodes = formed([7000, 7001, 7002], 1)
    del nodes[7002]
    with pytest.raises(ct.TopologyError) as caught:
        ct.plan(ct.Shape([7000, 7001], 1, 1), views(nodes))
    message = str(caught.value)
    assert "127.0.0.1:7002" in message and "removing nodes is not supported yet" in message
    assert "sandbox_cache_replicas_per_shard" in message


def test_two_holders_of_one_shard_are_refused() -> None:
    nodes = {p: Node(p) for p in (7000, 7001)}
    nodes[7000].slots = nodes[7001].slots = [(0, 16383)]
    with pytest.raises(ct.TopologyError, match="both claim slots 0-16383"):
        ct.plan(ct.Shape([7000, 7001], 1, 1), views(nodes))


def test_wrong_number_of_ports_is_refused() -> None:
    with pytest.raises(
        ct.TopologyError,
        match=r"3 ports given, but shards=1 x \(1 \+ replicas_per_shard=1\) needs 2",
    ):
        ct.Shape([7000, 7001, 7002], 1, 1)


def test_live_settings_that_differ_are_set_only_there() -> None:
    nodes = formed([7000, 7001], 1)
    live = {7000: CONFIG_GET_VALKEY, 7001: "maxmemory\n268435456\nappendonly\nno\nsave\n3600 1\n"}
    settings = {"maxmemory": "0", "appendonly": "no", "save": ""}
    plan = ct.plan(ct.Shape([7000, 7001], 1, 1), views(nodes), settings, live)
    assert [(a.kind, a.port, a.settings) for a in plan.actions] == [
        ("set_config", 7001, {"maxmemory": "0", "save": ""}),
    ]
    assert plan.actions[0].as_dict()["settings"] == ["maxmemory", "save"]
    assert (
        ct.plan(
            ct.Shape([7000, 7001], 1, 1),
            views(nodes),
            settings,
            {7000: CONFIG_GET_VALKEY, 7001: CONFIG_GET_REDIS},
        ).actions
        == []
    )
    with pytest.raises(ct.TopologyError, match="port 7001 did not answer CONFIG GET"):
        ct.plan(ct.Shape([7000, 7001], 1, 1), views(nodes), settings, {7000: CONFIG_GET_VALKEY})


def test_slot_ranges_cover_everything_once() -> None:
    for shards in range(1, 8):
        shape = ct.Shape(list(range(shards)), shards, 0)
        ranges = [shape.slot_range(k) for k in range(shards)]
        assert ranges[0][0] == 0 and ranges[-1][1] == 16383
        assert all(ranges[i][1] + 1 == ranges[i + 1][0] for i in range(shards - 1))
