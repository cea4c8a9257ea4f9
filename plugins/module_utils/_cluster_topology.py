# Copyright: (c) 2026, cachestack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning logic for the valkey_cluster module (Valkey and Redis OSS cluster mode).

Nothing here talks to a server: the module reads every node's ``CLUSTER NODES`` and
``CONFIG GET`` and hands the text to these functions, which parse it, compare the cluster
as the nodes see it with the desired shape (shards x replicas per shard over a list of
ports on one host) and return the ordered actions that close the gap. The module runs the
actions and waits for ``cluster_state:ok``.

The shape, as ElastiCache's NumNodeGroups and ReplicasPerNodeGroup: the first ``shards``
ports are the primaries, in shard order; replica port j (counted after the primaries)
belongs to shard ``j % shards``. Shard k owns slots ``16384*k//shards`` to
``16384*(k+1)//shards - 1``. After a failover any node of a shard may hold its slots: the
shard's other nodes then follow that node, and the roles are not swapped back.

What the planner does not do yet (issue 25), and refuses with a :class:`TopologyError`
naming the settings rather than doing something wrong: move slots (a cluster whose
primaries hold other slot ranges than the shape gives, e.g. after ``shards`` changed) and
remove nodes (a live node of the cluster that is not one of the ports, e.g. after
``replicas_per_shard`` went down). Adding replicas is a plain join and works.

Private to this collection: the leading underscore means no compatibility promise.
"""

from __future__ import annotations

import re

SLOTS = 16384
# What a role (or a user) calls the shape settings, for the refusals' messages.
SHAPE_SETTINGS = (
    "shards / replicas_per_shard (sandbox_cache_shards / sandbox_cache_replicas_per_shard)"
)
# Replies of the cli that are errors although it exits 0.
ERROR_RE = re.compile(
    r"^(ERR|NOAUTH|WRONGPASS|NOPERM|LOADING|CLUSTERDOWN|MOVED|ASK|MASTERDOWN|READONLY)\b", re.M
)
_NODE_ID_RE = re.compile(r"^[0-9a-f]{40}$")
_RANGE_RE = re.compile(r"^([0-9]+)(?:-([0-9]+))?$")

# Action kinds, in the order they run.
TAKEOVER = "takeover"
FORGET = "forget"
MEET = "meet"
ADDSLOTS = "addslots"
REPLICATE = "replicate"
SET_CONFIG = "set_config"


class TopologyError(Exception):
    """A cluster the planner cannot (or will not) bring to the desired shape."""


class ClusterNode:
    """One line of ``CLUSTER NODES``."""

    __slots__ = (
        "cport",
        "epoch",
        "flags",
        "hostname",
        "ip",
        "link",
        "node_id",
        "port",
        "primary_id",
        "slots",
    )

    def __init__(self, node_id, ip, port, cport, hostname, flags, primary_id, epoch, link, slots):
        self.node_id = node_id
        self.ip = ip
        self.port = port
        self.cport = cport
        self.hostname = hostname
        self.flags = flags
        self.primary_id = primary_id
        self.epoch = epoch
        self.link = link
        self.slots = slots

    @property
    def myself(self) -> bool:
        return "myself" in self.flags

    @property
    def is_primary(self) -> bool:
        return "master" in self.flags

    @property
    def is_replica(self) -> bool:
        return "slave" in self.flags

    @property
    def gone(self) -> bool:
        """Failed, or without an address (a node that was reset elsewhere shows ``:0@0 noaddr``)."""
        return bool({"fail", "fail?", "noaddr"} & set(self.flags))

    @property
    def handshake(self) -> bool:
        return "handshake" in self.flags

    def __repr__(self) -> str:
        flags = ",".join(self.flags)
        return f"ClusterNode({self.node_id[:8]} {self.ip}:{self.port} {flags} {self.slots})"


def parse_cluster_nodes(text: str) -> list:
    """Parse ``CLUSTER NODES`` output into :class:`ClusterNode` objects.

    ``<id> <ip:port@cport[,hostname[,aux=value...]]> <flags> <primary|-> <ping> <pong>
    <epoch> <link> [slot | start-end | [slot->-id] | [slot-<-id]]...``. Slots being
    migrated or imported (the bracketed entries) are not ownership and are left out.
    """
    nodes = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) < 8 or not _NODE_ID_RE.match(fields[0]):
            raise TopologyError(f"CLUSTER NODES line {number} is not a node: {line[:120]!r}")
        address = fields[1].split(",")
        hostname = address[1] if len(address) > 1 and "=" not in address[1] else ""
        ip_port, cport = ([*address[0].split("@", 1), ""])[:2]
        ip, port = (["", *ip_port.rsplit(":", 1)])[-2:]
        try:
            port_n = int(port)
            cport_n = int(cport) if cport else port_n + 10000
            epoch = int(fields[6])
        except ValueError:
            raise TopologyError(
                f"CLUSTER NODES line {number} has a bad address or epoch: {line[:120]!r}"
            ) from None
        slots = []
        for entry in fields[8:]:
            if entry.startswith("["):
                continue
            match = _RANGE_RE.match(entry)
            if not match:
                raise TopologyError(f"CLUSTER NODES line {number} has a bad slot entry {entry!r}")
            start = int(match.group(1))
            end = int(match.group(2) or start)
            slots.append((start, end))
        nodes.append(
            ClusterNode(
                node_id=fields[0],
                ip=ip,
                port=port_n,
                cport=cport_n,
                hostname=hostname,
                flags=tuple(fields[2].split(",")),
                primary_id=None if fields[3] == "-" else fields[3],
                epoch=epoch,
                link=fields[7],
                slots=tuple(_merge(slots)),
            )
        )
    return nodes


def parse_config_get(text: str) -> dict:
    """``CONFIG GET a b ...`` as the cli prints it: name and value on lines of their own, in
    any order; an empty value is an empty line (so the output has an even number of lines
    before its final newline)."""
    lines = text.split("\n")
    if len(lines) % 2:
        lines = lines[:-1]
    return dict(zip(lines[0::2], lines[1::2], strict=False))


def parse_cluster_info(text: str) -> dict:
    return dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)


def _merge(ranges) -> list:
    merged = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def format_slots(ranges) -> str:
    return " ".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges) or "none"


class Shape:
    """The desired cluster: ``shards`` primaries, each with ``replicas_per_shard`` replicas,
    over ``ports`` (primaries first, in shard order)."""

    def __init__(self, ports, shards: int, replicas_per_shard: int):
        if shards < 1:
            raise TopologyError(f"shards must be at least 1, not {shards}")
        if replicas_per_shard < 0:
            raise TopologyError(f"replicas_per_shard must be 0 or more, not {replicas_per_shard}")
        self.ports = [int(p) for p in ports]
        self.shards = shards
        self.replicas_per_shard = replicas_per_shard
        expected = shards * (1 + replicas_per_shard)
        if len(self.ports) != expected:
            raise TopologyError(
                f"{len(self.ports)} ports given, but shards={shards} x "
                f"(1 + replicas_per_shard={replicas_per_shard}) needs {expected}"
            )
        if len(set(self.ports)) != len(self.ports):
            raise TopologyError(f"ports repeat: {self.ports}")

    def slot_range(self, shard: int) -> tuple:
        return (SLOTS * shard // self.shards, SLOTS * (shard + 1) // self.shards - 1)

    def primary_port(self, shard: int) -> int:
        return self.ports[shard]

    def members(self, shard: int) -> list:
        """The shard's ports: its configured primary first, then its replicas."""
        replicas = self.ports[self.shards :]
        return [self.ports[shard]] + [p for j, p in enumerate(replicas) if j % self.shards == shard]

    def shard_of(self, port: int) -> int:
        index = self.ports.index(port)
        return index if index < self.shards else (index - self.shards) % self.shards


class Action:
    """One step: ``kind`` on the node at ``port`` (see the kinds above)."""

    __slots__ = ("bus_port", "kind", "node_id", "port", "settings", "slots", "target_port")

    def __init__(
        self, kind, port, target_port=None, node_id=None, slots=None, settings=None, bus_port=None
    ):
        self.kind = kind
        self.port = port
        self.target_port = target_port
        self.bus_port = bus_port
        self.node_id = node_id
        self.slots = slots
        self.settings = settings

    def describe(self) -> str:
        if self.kind == MEET:
            return f"{self.port}: CLUSTER MEET the node on port {self.target_port}"
        if self.kind == ADDSLOTS:
            return f"{self.port}: CLUSTER ADDSLOTSRANGE {self.slots[0]} {self.slots[1]}"
        if self.kind == REPLICATE:
            target = f"the node on port {self.target_port} ({self.node_id})"
            return f"{self.port}: CLUSTER REPLICATE {target}"
        if self.kind == FORGET:
            return f"{self.port}: CLUSTER FORGET {self.node_id} (a node that is gone)"
        if self.kind == TAKEOVER:
            return f"{self.port}: CLUSTER FAILOVER TAKEOVER (its primary {self.node_id} is gone)"
        if self.kind == SET_CONFIG:
            return f"{self.port}: CONFIG SET {' '.join(sorted(self.settings))}"
        return f"{self.port}: {self.kind}"

    def as_dict(self) -> dict:
        result = {"action": self.kind, "port": self.port, "description": self.describe()}
        if self.target_port is not None:
            result["target_port"] = self.target_port
        if self.bus_port is not None:
            result["bus_port"] = self.bus_port
        if self.node_id is not None:
            result["node_id"] = self.node_id
        if self.slots is not None:
            result["slots"] = list(self.slots)
        if self.settings is not None:
            # Names only: values may be anything the caller passed.
            result["settings"] = sorted(self.settings)
        return result

    def __repr__(self) -> str:
        return f"Action({self.describe()})"

    def key(self) -> tuple:
        return (self.kind, self.port, self.target_port, self.node_id, self.slots)


class Plan:
    """The planner's answer: ``actions`` in order, and the topology they lead to."""

    def __init__(self, actions, before, after):
        self.actions = actions
        self.before = before
        self.after = after

    @property
    def changed(self) -> bool:
        return bool(self.actions)


def summarize(shape: Shape, myself: dict) -> dict:
    """Port -> what that node says it is, e.g. ``primary 0-16383``, ``replica of 6379``."""
    port_of = {node.node_id: port for port, node in myself.items()}
    summary = {}
    for port in shape.ports:
        node = myself[port]
        if node.is_replica:
            leader = port_of.get(node.primary_id, f"gone node {node.primary_id}")
            summary[str(port)] = f"replica of {leader}"
        elif node.slots:
            summary[str(port)] = f"primary {format_slots(node.slots)}"
        else:
            summary[str(port)] = "primary without slots"
    return summary


def plan(shape: Shape, views: dict, settings=None, live=None) -> Plan:
    """Compare every node's view with ``shape`` and return the :class:`Plan`.

    ``views``: port -> that node's ``CLUSTER NODES`` text, or an exception / error string
    when the node did not answer (a :class:`TopologyError` naming it). ``settings``: the
    live settings every node must have (name -> value, as CONFIG GET prints them);
    ``live``: port -> that node's CONFIG GET text.
    """
    errors = []
    for port in shape.ports:
        view = views.get(port)
        if not isinstance(view, str):
            view = "no answer" if view is None else view
            errors.append(str(view) if f"port {port}" in str(view) else f"port {port}: {view}")
    if errors:
        raise TopologyError("nodes did not answer CLUSTER NODES: " + "; ".join(errors))
    parsed = {port: parse_cluster_nodes(views[port]) for port in shape.ports}
    myself = {}
    for port, nodes in parsed.items():
        mine = [n for n in nodes if n.myself]
        if len(mine) != 1:
            raise TopologyError(f"{port}: CLUSTER NODES has {len(mine)} myself lines, not 1")
        myself[port] = mine[0]
    port_of = {node.node_id: port for port, node in myself.items()}
    if len(port_of) != len(myself):
        raise TopologyError(f"two ports answer with the same node id: {sorted(port_of)}")
    anchor = shape.ports[0]

    # Nodes in some view that are none of the ports' current nodes: gone ones (reset, lost
    # their nodes.conf) are forgotten; live ones are nodes to remove, not done yet.
    stale = {}
    for port in shape.ports:
        for node in parsed[port]:
            if node.node_id in port_of or node.handshake:
                continue
            # Gone: failed, without an address, or its address is now another node's (reset).
            if not node.gone and node.port not in shape.ports:
                raise TopologyError(
                    f"node {node.node_id} ({node.ip}:{node.port}, {','.join(node.flags)}) is in "
                    f"the cluster (node {port} knows it) but is not one of the ports "
                    f"{shape.ports}: removing nodes is not supported yet; set {SHAPE_SETTINGS} "
                    "back to the shape that includes it, or remove it by hand"
                )
            stale.setdefault(node.node_id, node)

    # Who holds which slots, by each node's own word (as the nodes are the authority on
    # themselves); slots only a gone node holds, by any node's view.
    wanted = {shape.slot_range(k): k for k in range(shape.shards)}
    holder = {}
    for port in shape.ports:
        node = myself[port]
        for rng in node.slots:
            if rng not in wanted:
                raise TopologyError(
                    f"node {port} holds slots {format_slots(node.slots)}, but "
                    f"shards={shape.shards} gives {format_slots(sorted(wanted))}: changing the "
                    "number of shards of a formed cluster (moving slots) is not supported yet; "
                    f"set {SHAPE_SETTINGS} back to the cluster's shape"
                )
            shard = wanted[rng]
            if port not in shape.members(shard):
                raise TopologyError(
                    f"node {port} holds shard {shard}'s slots {format_slots([rng])}, but the "
                    f"shape puts port {port} in shard {shape.shard_of(port)} ({SHAPE_SETTINGS} "
                    "changed?): moving a node between shards is not supported yet"
                )
            if shard in holder:
                raise TopologyError(
                    f"nodes {holder[shard]} and {port} both claim slots "
                    f"{format_slots([rng])}: fix the cluster by hand"
                )
            holder[shard] = port
    gone_holder = {}
    for node in stale.values():
        for rng in node.slots:
            if rng in wanted and wanted[rng] not in holder:
                gone_holder[wanted[rng]] = node.node_id

    actions = []
    takeovers, forgets, meets, addslots, early_replicas, replicas, configs = (
        [],
        [],
        [],
        [],
        [],
        [],
        [],
    )
    after = {}
    for shard in range(shape.shards):
        members = shape.members(shard)
        rng = shape.slot_range(shard)
        leader = holder.get(shard)
        if leader is None and shard in gone_holder:
            # The shard's primary is gone (reset, lost its state): a replica of it that is
            # still here takes its slots over (TAKEOVER: there may be no primary left to vote).
            candidates = [
                p
                for p in members
                if myself[p].is_replica and myself[p].primary_id == gone_holder[shard]
            ]
            if candidates:
                leader = candidates[0]
                takeovers.append(Action(TAKEOVER, leader, node_id=gone_holder[shard]))
        if leader is None:
            # Nobody (alive) holds the shard's slots: its configured primary takes them
            # when it is a primary without slots (a new node, or one that lost its state).
            leader = shape.primary_port(shard)
            node = myself[leader]
            if node.is_replica:
                follows = port_of.get(node.primary_id, f"the gone node {node.primary_id}")
                raise TopologyError(
                    f"slots {format_slots([rng])} of shard {shard} have no holder, and the "
                    f"shard's primary port {leader} is a replica of {follows}: fix the cluster "
                    "by hand"
                )
            addslots.append(Action(ADDSLOTS, leader, slots=rng))
        after[str(leader)] = f"primary {format_slots([rng])}"
        leader_id = myself[leader].node_id
        for port in members:
            if port == leader:
                continue
            after[str(port)] = f"replica of {leader}"
            node = myself[port]
            if node.is_replica and node.primary_id == leader_id:
                continue
            step = Action(REPLICATE, port, target_port=leader, node_id=leader_id)
            # A replica of a gone node must follow the new leader before it can forget
            # the gone one (a node cannot forget its own primary).
            if node.is_replica and node.primary_id in stale:
                early_replicas.append(step)
            else:
                replicas.append(step)

    for node_id in sorted(stale):
        for port in shape.ports:
            if any(n.node_id == node_id for n in parsed[port]):
                forgets.append(Action(FORGET, port, node_id=node_id))

    anchor_id = myself[anchor].node_id
    anchor_knows = {n.node_id for n in parsed[anchor] if not n.handshake}
    for port in shape.ports[1:]:
        knows = {n.node_id for n in parsed[port] if not n.handshake}
        if myself[port].node_id not in anchor_knows or anchor_id not in knows:
            meets.append(
                Action(
                    MEET,
                    anchor,
                    target_port=port,
                    bus_port=myself[port].cport,
                    node_id=myself[port].node_id,
                )
            )

    if settings:
        for port in shape.ports:
            answer = (live or {}).get(port)
            if not isinstance(answer, str):
                answer = "no answer" if answer is None else answer
                raise TopologyError(f"port {port} did not answer CONFIG GET: {answer}")
            have = parse_config_get(answer)
            differ = {k: str(v) for k, v in settings.items() if have.get(k) != str(v)}
            if differ:
                configs.append(Action(SET_CONFIG, port, settings=differ))

    actions = takeovers + early_replicas + forgets + meets + addslots + replicas + configs
    return Plan(actions, summarize(shape, myself), {p: after[p] for p in map(str, shape.ports)})
