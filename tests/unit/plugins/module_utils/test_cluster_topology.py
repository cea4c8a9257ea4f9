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
        self.migrating: dict[int, str] = {}  # slot -> target id (shown on its own line)
        self.importing: dict[int, str] = {}  # slot -> source id

    def line(self, of: Node, me: bool) -> str:
        role = "slave" if of.primary else "master"
        flags = f"myself,{role}" if me else role
        slots = " ".join(f"{a}-{b}" for a, b in of.slots)
        if me:
            slots += "".join(f" [{s}->-{t}]" for s, t in of.migrating.items())
            slots += "".join(f" [{s}-<-{f}]" for s, f in of.importing.items())
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


def test_two_holders_without_a_move_are_unsettled_not_moved() -> None:
    nodes = {p: Node(p) for p in (7000, 7001)}
    nodes[7000].slots = nodes[7001].slots = [(0, 16383)]
    with pytest.raises(ct.Unsettled, match="nodes 7000 and 7001 both claim slots 0-16383"):
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


# --- reshaping a formed cluster (issue 25) -----------------------------------------------
# The sandbox's layout: shard k's member i on port 7000 + 6k + i, so a node never changes
# shard when the shape changes; the shape's ports list the primaries first.


def stable_ports(shards: int, replicas: int) -> list[int]:
    return [7000 + 6 * k + i for i in range(replicas + 1) for k in range(shards)]


def moves(plan: ct.Plan) -> list[tuple]:
    return [
        (a.port, a.target_port, a.slots, a.importing, a.migrating)
        for a in plan.actions
        if a.kind == ct.MOVE
    ]


def apply_moves(nodes: dict[int, Node], plan: ct.Plan) -> None:
    """What the module's moves do to the views: slots change hands, states clear."""
    by_id = {n.id: n for n in nodes.values()}
    for action in plan.actions:
        if action.kind != ct.MOVE:
            continue
        src, dst = nodes[action.port], by_id[action.node_id]
        a, b = action.slots
        for node in (src, dst):
            kept = []
            for first, last in node.slots:
                kept += [(first, min(last, a - 1)), (max(first, b + 1), last)]
            node.slots = [(x, y) for x, y in kept if x <= y]
            node.migrating = {s: t for s, t in node.migrating.items() if not a <= s <= b}
            node.importing = {s: t for s, t in node.importing.items() if not a <= s <= b}
        dst.slots = sorted([*dst.slots, (a, b)])


def test_one_to_three_shards_meets_new_nodes_and_moves_their_slots() -> None:
    nodes = formed(stable_ports(1, 1), 1)
    for port in (7006, 7012, 7007, 7013):
        nodes[port] = Node(port)
    shape = ct.Shape(stable_ports(3, 1), 3, 1)
    assert shape.ports == [7000, 7006, 7012, 7001, 7007, 7013]
    plan = ct.plan(shape, views(nodes))
    assert kinds(plan) == [
        ("meet", 7000, 7006, None, nid(7006)),
        ("meet", 7000, 7012, None, nid(7012)),
        ("meet", 7000, 7007, None, nid(7007)),
        ("meet", 7000, 7013, None, nid(7013)),
        # The new replicas follow their empty primaries first, so they copy the keys
        # as the slots arrive.
        ("replicate", 7007, 7006, None, nid(7006)),
        ("replicate", 7013, 7012, None, nid(7012)),
        ("move", 7000, 7006, (5461, 10921), nid(7006)),
        ("move", 7000, 7012, (10922, 16383), nid(7012)),
    ]
    assert all(a.source_id == nid(7000) for a in plan.actions if a.kind == ct.MOVE)
    assert moves(plan)[0][3:] == (True, True)  # importing on the target, migrating on the source
    assert (
        plan.before["7000"] == "primary 0-16383" and plan.before["7006"] == "primary without slots"
    )
    assert plan.after == {
        "7000": "primary 0-5460",
        "7006": "primary 5461-10921",
        "7012": "primary 10922-16383",
        "7001": "replica of 7000",
        "7007": "replica of 7006",
        "7013": "replica of 7012",
    }
    # Done: the rerun changes nothing.
    assert ct.plan(shape, views(formed(shape.ports, 3))).actions == []


def test_three_to_two_shards_moves_the_leaving_shards_slots_off_then_removes_it() -> None:
    nodes = formed(stable_ports(3, 1), 3)
    shape = ct.Shape(stable_ports(2, 1), 2, 1)
    assert ct.leaving_ports(shape, views(nodes)) == [7012, 7013]
    plan = ct.plan(shape, views(nodes))
    assert moves(plan) == [
        (7006, 7000, (5461, 8191), True, True),
        (7012, 7006, (10922, 16383), True, True),
    ]
    kinds_after_moves = [(a.kind, a.port, a.node_id) for a in plan.actions if a.kind != ct.MOVE]
    assert kinds_after_moves == [
        *[("forget", p, nid(7012)) for p in (7000, 7006, 7001, 7007)],
        *[("forget", p, nid(7013)) for p in (7000, 7006, 7001, 7007)],
        ("reset", 7012, nid(7012)),
        ("reset", 7013, nid(7013)),
    ]
    # Moves first, then forgets, then resets.
    order = [a.kind for a in plan.actions]
    assert order.index("reset") > max(i for i, k in enumerate(order) if k == "forget")
    assert max(i for i, k in enumerate(order) if k == "move") < order.index("forget")
    assert "which leaves" in plan.actions[2].describe()
    assert plan.before["7012"] == "primary 10922-16383" and plan.before["7013"] == "replica of 7012"
    assert plan.after == {
        "7000": "primary 0-8191",
        "7006": "primary 8192-16383",
        "7001": "replica of 7000",
        "7007": "replica of 7006",
        "7012": "removed",
        "7013": "removed",
    }
    assert plan.live_ports == [7000, 7006, 7001, 7007, 7012, 7013]
    assert plan.primaries == [7000, 7006, 7012]
    # After the moves, the forgets and the resets, the two nodes are gone from every view.
    done = formed(shape.ports, 2)
    assert ct.plan(shape, views(done)).actions == []


def test_three_to_one_shard_moves_everything_to_the_first() -> None:
    nodes = formed(stable_ports(3, 1), 3)
    plan = ct.plan(ct.Shape(stable_ports(1, 1), 1, 1), views(nodes))
    assert moves(plan) == [
        (7006, 7000, (5461, 10921), True, True),
        (7012, 7000, (10922, 16383), True, True),
    ]
    assert [a.port for a in plan.actions if a.kind == ct.RESET] == [7006, 7007, 7012, 7013]
    forgets = [(a.port, a.node_id) for a in plan.actions if a.kind == ct.FORGET]
    assert forgets == [(p, nid(q)) for q in (7006, 7007, 7012, 7013) for p in (7000, 7001)]
    apply_moves(nodes, plan)
    assert nodes[7000].slots == [(0, 5460), (5461, 10921), (10922, 16383)]


def test_two_to_three_shards_takes_from_both() -> None:
    nodes = formed(stable_ports(2, 0), 2)
    nodes[7012] = Node(7012)
    plan = ct.plan(ct.Shape(stable_ports(3, 0), 3, 0), views(nodes))
    # 0-8191 / 8192-16383 -> 0-5460 / 5461-10921 / 10922-16383
    assert moves(plan) == [
        (7000, 7006, (5461, 8191), True, True),
        (7006, 7012, (10922, 16383), True, True),
    ]


def test_a_move_killed_midway_is_finished_first_then_the_rest_moves() -> None:
    # 1 -> 3 shards, killed while slot 6001 was between 7000 and 7006: 5461-6000 arrived.
    shape = ct.Shape(stable_ports(3, 1), 3, 1)
    nodes = formed(shape.ports, 3)
    nodes[7000].slots = [(0, 5460), (6001, 16383)]
    nodes[7006].slots = [(5461, 6000)]
    nodes[7012].slots = []
    nodes[7000].migrating = {6001: nid(7006)}
    nodes[7006].importing = {6001: nid(7000)}
    plan = ct.plan(shape, views(nodes))
    assert moves(plan) == [
        (7000, 7006, (6001, 6001), True, True),  # finished first, both states set again
        (7000, 7006, (6002, 10921), True, True),
        (7000, 7012, (10922, 16383), True, True),
    ]
    assert (
        plan.actions[0].kind == ct.MOVE and "finish moving slots 6001" in plan.actions[0].describe()
    )
    apply_moves(nodes, plan)
    assert ct.plan(shape, views(nodes)).actions == []


def test_a_move_killed_between_the_two_setslot_node_is_only_announced() -> None:
    # The target took the slot (SETSLOT NODE on it), the source still holds and migrates it.
    shape = ct.Shape(stable_ports(2, 0), 2, 0)
    nodes = formed(shape.ports, 2)
    nodes[7000].slots = [(0, 8191), (8192, 8192)]
    nodes[7006].slots = [(8192, 16383)]
    nodes[7000].migrating = {8192: nid(7006)}
    plan = ct.plan(shape, views(nodes))
    # Neither state set again (the target holds it, the source migrates it already): no
    # keys left to move, SETSLOT NODE on the source and the others.
    assert moves(plan) == [(7000, 7006, (8192, 8192), False, False)]


def test_a_move_killed_after_importing_only_is_finished() -> None:
    shape = ct.Shape(stable_ports(2, 0), 2, 0)
    nodes = formed(shape.ports, 2)
    nodes[7000].slots = [(0, 8192)]
    nodes[7006].slots = [(8193, 16383)]
    nodes[7006].importing = {8192: nid(7000)}
    plan = ct.plan(shape, views(nodes))
    assert moves(plan) == [(7000, 7006, (8192, 8192), True, True)]


def test_a_move_killed_then_shape_set_back_finishes_then_moves_back() -> None:
    # 1 -> 2 shards killed mid-slot, then the shape set back to 1 shard: the slot goes
    # where it was going, then everything comes back and the new node leaves.
    nodes = formed(stable_ports(2, 0), 2)
    nodes[7000].slots = [(0, 8192)]
    nodes[7006].slots = [(8193, 16383)]
    nodes[7000].migrating = {8192: nid(7006)}
    nodes[7006].importing = {8192: nid(7000)}
    plan = ct.plan(ct.Shape([7000], 1, 0), views(nodes))
    assert moves(plan) == [
        (7000, 7006, (8192, 8192), True, True),
        (7006, 7000, (8192, 16383), True, True),
    ]
    assert [a.port for a in plan.actions if a.kind == ct.RESET] == [7006]


def test_a_move_to_a_gone_node_is_set_stable() -> None:
    shape = ct.Shape(stable_ports(1, 1), 1, 1)
    nodes = formed(shape.ports, 1)
    gone = nid(7006)
    nodes[7000].migrating = {100: gone}
    nodes[7000].known[gone] = f"{gone} :0@0 master,fail,noaddr - 1 1 1 disconnected"
    plan = ct.plan(shape, views(nodes))
    assert [(a.kind, a.port, a.slots) for a in plan.actions] == [
        ("forget", 7000, None),
        ("stable", 7000, (100, 100)),
    ]
    assert "not a live node" in plan.actions[1].describe()


def test_fewer_replicas_forgets_and_resets_the_surplus() -> None:
    nodes = formed(stable_ports(1, 2), 1)  # 7000, its replicas 7001 and 7002
    shape = ct.Shape(stable_ports(1, 1), 1, 1)
    plan = ct.plan(shape, views(nodes))
    assert kinds(plan) == [
        ("forget", 7000, None, None, nid(7002)),
        ("forget", 7001, None, None, nid(7002)),
        ("reset", 7002, None, None, nid(7002)),
    ]
    assert plan.after == {"7000": "primary 0-16383", "7001": "replica of 7000", "7002": "removed"}
    assert plan.before["7002"] == "replica of 7000"


def test_fewer_replicas_when_the_promoted_replica_leaves_fails_over_back_first() -> None:
    # 3 shards x 2 replicas: shard 1's primary 7006 failed over to 7008 (7006 and 7007
    # follow it now); with 1 replica per shard 7008 leaves: 7006 takes over from it with
    # its agreement (CLUSTER FAILOVER, no keys lost), 7007 follows 7006, 7008 goes.
    nodes = formed(stable_ports(3, 2), 3)
    nodes[7008].primary, nodes[7008].slots = None, nodes[7006].slots
    nodes[7006].primary, nodes[7006].slots = nodes[7008].id, []
    nodes[7007].primary = nodes[7008].id
    plan = ct.plan(ct.Shape(stable_ports(3, 1), 3, 1), views(nodes))
    steps = [(a.kind, a.port) for a in plan.actions]
    assert steps[:2] == [("failover", 7006), ("replicate", 7007)]
    assert moves(plan) == []
    assert plan.after["7006"] == "primary 5461-10921" and plan.after["7008"] == "removed"
    assert ("reset", 7008) in steps and ("reset", 7002) in steps and ("reset", 7014) in steps


def test_a_shard_whose_nodes_all_follow_another_shard_is_refused() -> None:
    nodes = formed(stable_ports(2, 1), 2)
    nodes[7006].primary, nodes[7006].slots = nodes[7000].id, []
    nodes[7000].slots = [(0, 16383)]
    nodes[7007].primary = nodes[7000].id
    with pytest.raises(ct.TopologyError, match=r"shard 1 \(ports \[7006, 7007\]\) has no primary"):
        ct.plan(ct.Shape(stable_ports(2, 1), 2, 1), views(nodes))


def test_a_leaving_node_that_does_not_answer_is_named() -> None:
    nodes = formed(stable_ports(1, 2), 1)
    answers: dict[int, object] = views(nodes)
    del answers[7002]
    with pytest.raises(
        ct.TopologyError, match=r"127.0.0.1:7002\) leaves the cluster.*did not answer"
    ):
        ct.plan(ct.Shape(stable_ports(1, 1), 1, 1), answers)


def test_migrating_and_importing_entries_are_parsed() -> None:
    text = (
        f"{nid(7000)} 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5000"
        f" [5001->-{nid(7006)}] [9-<-{nid(7012)}]\n"
    )
    (node,) = ct.parse_cluster_nodes(text)
    assert node.slots == ((0, 5000),)
    assert node.migrating == {5001: nid(7006)} and node.importing == {9: nid(7012)}
    with pytest.raises(ct.TopologyError, match="bad slot entry"):
        ct.parse_cluster_nodes(text.replace("[5001->-", "[5001=>-"))


def test_a_replicas_copy_of_the_move_states_is_not_a_second_move() -> None:
    # Valkey 8 replicates SETSLOT IMPORTING / MIGRATING to the replicas.
    shape = ct.Shape(stable_ports(2, 1), 2, 1)
    nodes = formed(shape.ports, 2)
    nodes[7000].slots = [(0, 8192)]
    nodes[7006].slots = [(8193, 16383)]
    for port in (7000, 7001):
        nodes[port].migrating = {8192: nid(7006)}
    for port in (7006, 7007):
        nodes[port].importing = {8192: nid(7000)}
    plan = ct.plan(shape, views(nodes))
    assert [(a.kind, a.port) for a in plan.actions] == [("move", 7000)]
    assert moves(plan) == [(7000, 7006, (8192, 8192), True, True)]
