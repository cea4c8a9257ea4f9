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

Changing the shape of a formed cluster (issue 25) is planned here too. More shards: the
new nodes are met and the slots that the shape gives their shards are moved to them; fewer
shards: the leaving shards' slots are moved onto the remaining ones first, then the leaving
nodes are forgotten by every other node and reset (the caller stops them). Fewer replicas:
the surplus replicas are forgotten and reset the same way. A slot moves as ``valkey-cli
--cluster reshard`` moves it: ``CLUSTER SETSLOT <slot> IMPORTING`` on the target,
``MIGRATING`` on the source, its keys with ``MIGRATE``, then ``SETSLOT <slot> NODE`` on the
target, the source and the other primaries. A run killed in the middle leaves slots
importing or migrating (the bracketed entries of ``CLUSTER NODES``): the next plan finishes
each of them, to the node it was going to, before anything else moves; a slot whose other
end is gone is set back to stable.

Which node leads a shard: the member (a port the shape puts in that shard) that is a
primary holding the most of the shard's slots, else a replica of a gone holder (which takes
over), else the shard's configured primary port. Slots are then owned, by the nodes' own
word, by a leader: a slot held by any other node moves to its shard's leader.

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
    r"^(ERR|NOAUTH|WRONGPASS|NOPERM|LOADING|CLUSTERDOWN|MOVED|ASK|MASTERDOWN|READONLY|IOERR"
    r"|BUSYKEY|TRYAGAIN|CROSSSLOT)\b",
    re.M,
)
_NODE_ID_RE = re.compile(r"^[0-9a-f]{40}$")
_RANGE_RE = re.compile(r"^([0-9]+)(?:-([0-9]+))?$")
_MIGRATING_RE = re.compile(r"^\[([0-9]+)->-([0-9a-f]{40})\]$")
_IMPORTING_RE = re.compile(r"^\[([0-9]+)-<-([0-9a-f]{40})\]$")

# Action kinds, in the order they run.
TAKEOVER = "takeover"
FAILOVER = "failover"
FORGET = "forget"
MEET = "meet"
STABLE = "stable"
ADDSLOTS = "addslots"
MOVE = "move"
REPLICATE = "replicate"
RESET = "reset"
SET_CONFIG = "set_config"


class TopologyError(Exception):
    """A cluster the planner cannot (or will not) bring to the desired shape."""


class Unsettled(TopologyError):
    """The nodes disagree in a way the cluster settles by itself in a few seconds (two
    nodes claim a slot, e.g. a primary that comes back after its replica took over): read
    the views again a little later."""


class ClusterNode:
    """One line of ``CLUSTER NODES``."""

    __slots__ = (
        "cport",
        "epoch",
        "flags",
        "hostname",
        "importing",
        "ip",
        "link",
        "migrating",
        "node_id",
        "port",
        "primary_id",
        "slots",
    )

    def __init__(
        self,
        node_id,
        ip,
        port,
        cport,
        hostname,
        flags,
        primary_id,
        epoch,
        link,
        slots,
        migrating=None,
        importing=None,
    ):
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
        # slot -> the node id it is migrating to / importing from (own line only).
        self.migrating = migrating or {}
        self.importing = importing or {}

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
    migrated or imported (the bracketed entries, on a node's own line) are not ownership:
    they go to ``migrating`` and ``importing``.
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
        migrating, importing = {}, {}
        for entry in fields[8:]:
            if entry.startswith("["):
                moving = _MIGRATING_RE.match(entry)
                coming = _IMPORTING_RE.match(entry)
                if moving:
                    migrating[int(moving.group(1))] = moving.group(2)
                elif coming:
                    importing[int(coming.group(1))] = coming.group(2)
                else:
                    raise TopologyError(
                        f"CLUSTER NODES line {number} has a bad slot entry {entry!r}"
                    )
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
                migrating=migrating,
                importing=importing,
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
    """One step: ``kind`` on the node at ``port`` (see the kinds above).

    A ``move`` runs on its source ``port`` and sends the slots ``slots`` (first, last) to
    ``target_port`` (id ``node_id``); ``source_id`` is the source's id. ``importing`` and
    ``migrating`` say whether the target still has to be set importing and the source
    migrating (an interrupted move that is being finished may have either done already).
    """

    __slots__ = (
        "bus_port",
        "importing",
        "kind",
        "migrating",
        "node_id",
        "note",
        "port",
        "settings",
        "slots",
        "source_id",
        "target_port",
    )

    def __init__(
        self,
        kind,
        port,
        target_port=None,
        node_id=None,
        slots=None,
        settings=None,
        bus_port=None,
        source_id=None,
        importing=True,
        migrating=True,
        note=None,
    ):
        self.kind = kind
        self.port = port
        self.target_port = target_port
        self.bus_port = bus_port
        self.node_id = node_id
        self.slots = slots
        self.settings = settings
        self.source_id = source_id
        self.importing = importing
        self.migrating = migrating
        self.note = note

    def describe(self) -> str:
        if self.kind == MEET:
            return f"{self.port}: CLUSTER MEET the node on port {self.target_port}"
        if self.kind == ADDSLOTS:
            return f"{self.port}: CLUSTER ADDSLOTSRANGE {self.slots[0]} {self.slots[1]}"
        if self.kind == REPLICATE:
            target = f"the node on port {self.target_port} ({self.node_id})"
            return f"{self.port}: CLUSTER REPLICATE {target}"
        if self.kind == FORGET:
            why = self.note or "a node that is gone"
            return f"{self.port}: CLUSTER FORGET {self.node_id} ({why})"
        if self.kind == TAKEOVER:
            return f"{self.port}: CLUSTER FAILOVER TAKEOVER (its primary {self.node_id} is gone)"
        if self.kind == FAILOVER:
            return (
                f"{self.port}: CLUSTER FAILOVER (takes the slots over from its primary "
                f"{self.node_id}, which leaves)"
            )
        if self.kind == SET_CONFIG:
            return f"{self.port}: CONFIG SET {' '.join(sorted(self.settings))}"
        if self.kind == MOVE:
            what = "finish moving" if self.note else "move"
            slots = format_slots([self.slots])
            return (
                f"{self.port}: {what} slots {slots} and their keys to the node on port "
                f"{self.target_port} (CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE)"
            )
        if self.kind == STABLE:
            return f"{self.port}: CLUSTER SETSLOT {self.slots[0]} STABLE ({self.note})"
        if self.kind == RESET:
            return f"{self.port}: CLUSTER RESET SOFT (it leaves the cluster)"
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
    """The planner's answer: ``actions`` in order, and the topology they lead to.

    ``live_ports``: every node of the cluster that answered (the shape's and the leaving
    ones); ``primaries``: those that hold slots while slots move, to which a moved slot's
    new owner is announced; ``leaving``: the ports of the nodes that leave."""

    def __init__(self, actions, before, after, live_ports=None, leaving=None, primaries=None):
        self.actions = actions
        self.before = before
        self.after = after
        self.live_ports = list(live_ports or [])
        self.leaving = list(leaving or [])
        self.primaries = list(primaries or [])

    @property
    def changed(self) -> bool:
        return bool(self.actions)


def summarize(shape: Shape, myself: dict) -> dict:
    """Port -> what that node says it is, e.g. ``primary 0-16383``, ``replica of 6379``.

    ``myself`` may hold more ports than the shape (nodes that leave): they are shown too."""
    port_of = {node.node_id: port for port, node in myself.items()}
    summary = {}
    ports = list(shape.ports) + sorted(p for p in myself if p not in shape.ports)
    for port in ports:
        if port not in myself:
            continue
        node = myself[port]
        if node.is_replica:
            leader = port_of.get(node.primary_id, f"gone node {node.primary_id}")
            summary[str(port)] = f"replica of {leader}"
        elif node.slots:
            summary[str(port)] = f"primary {format_slots(node.slots)}"
        else:
            summary[str(port)] = "primary without slots"
    return summary


def _ranges(slots) -> list:
    """Sorted slot numbers -> [(first, last), ...] of consecutive runs."""
    runs = []
    for slot in slots:
        if runs and slot == runs[-1][1] + 1:
            runs[-1][1] = slot
        else:
            runs.append([slot, slot])
    return [tuple(r) for r in runs]


def _myself_of(port, text) -> tuple:
    nodes = parse_cluster_nodes(text)
    mine = [n for n in nodes if n.myself]
    if len(mine) != 1:
        raise TopologyError(f"{port}: CLUSTER NODES has {len(mine)} myself lines, not 1")
    return nodes, mine[0]


def leaving_ports(shape: Shape, views: dict) -> list:
    """Ports of the live nodes that the shape's nodes know but that are none of its ports:
    the nodes that leave (the caller reads their views too and hands them to :func:`plan`).
    """
    ports = set()
    own_ids = set()
    parsed = {}
    for port in shape.ports:
        view = views.get(port)
        if isinstance(view, str):
            parsed[port], mine = _myself_of(port, view)
            own_ids.add(mine.node_id)
    for nodes in parsed.values():
        for node in nodes:
            if node.node_id in own_ids or node.handshake or node.gone:
                continue
            if node.port not in shape.ports:
                ports.add(node.port)
    return sorted(ports)


def plan(shape: Shape, views: dict, settings=None, live=None) -> Plan:
    """Compare every node's view with ``shape`` and return the :class:`Plan`.

    ``views``: port -> that node's ``CLUSTER NODES`` text, or an exception / error string
    when the node did not answer (a :class:`TopologyError` naming it); it holds the
    shape's ports and those :func:`leaving_ports` names. ``settings``: the live settings
    every node must have (name -> value, as CONFIG GET prints them); ``live``: port ->
    that node's CONFIG GET text.
    """
    errors = []
    for port in shape.ports:
        view = views.get(port)
        if not isinstance(view, str):
            view = "no answer" if view is None else view
            errors.append(str(view) if f"port {port}" in str(view) else f"port {port}: {view}")
    if errors:
        raise TopologyError("nodes did not answer CLUSTER NODES: " + "; ".join(errors))
    parsed, myself = {}, {}
    for port in shape.ports:
        parsed[port], myself[port] = _myself_of(port, views[port])
    port_of = {node.node_id: port for port, node in myself.items()}
    if len(port_of) != len(myself):
        raise TopologyError(f"two ports answer with the same node id: {sorted(port_of)}")
    anchor = shape.ports[0]

    # Nodes in some view that are none of the shape's current nodes: gone ones (failed,
    # without an address, or whose address is now another node's after a reset) are
    # forgotten; live ones on other ports leave the cluster (their views are read too).
    stale, leaving = {}, {}
    for port in shape.ports:
        for node in parsed[port]:
            if node.node_id in port_of or node.handshake:
                continue
            if node.gone or node.port in shape.ports:
                stale.setdefault(node.node_id, node)
            else:
                leaving.setdefault(node.port, node)
    for lport, node in sorted(leaving.items()):
        view = views.get(lport)
        if not isinstance(view, str):
            raise TopologyError(
                f"node {node.node_id} ({node.ip}:{lport}) leaves the cluster (it is not one of "
                f"the ports {shape.ports} of {SHAPE_SETTINGS}) but did not answer CLUSTER "
                f"NODES: {view or 'no answer'}; start it again so its slots can move off, or "
                "wait until the cluster marks it failed"
            )
        parsed[lport], myself[lport] = _myself_of(lport, view)
        if myself[lport].node_id != node.node_id:
            # Another node answers there now: the one the cluster knows is gone.
            stale.setdefault(node.node_id, node)
            del parsed[lport], myself[lport]
            continue
        port_of[node.node_id] = lport
    leaving_list = sorted(p for p in myself if p not in shape.ports)
    live_ports = list(shape.ports) + leaving_list

    # Who holds each slot, by each node's own word (the nodes are the authority on
    # themselves). A slot two nodes claim is settled when one of them is migrating it to
    # the other (a move stopped between the two SETSLOT NODE); otherwise the cluster
    # settles it by itself (config epochs), and the caller reads again.
    owner = [None] * SLOTS
    conflicts = []
    for port in live_ports:
        node = myself[port]
        for first, last in node.slots:
            for slot in range(first, last + 1):
                other = owner[slot]
                if other is None or myself[other].migrating.get(slot) == node.node_id:
                    owner[slot] = port
                elif node.migrating.get(slot) != myself[other].node_id:
                    conflicts.append((slot, other, port))
    if conflicts:
        pairs = {}
        for slot, a, b in conflicts:
            pairs.setdefault((a, b), []).append(slot)
        (a, b), slots = next(iter(pairs.items()))
        raise Unsettled(
            f"nodes {a} and {b} both claim slots {format_slots(_ranges(slots))}: the cluster "
            "settles this by itself (the higher config epoch wins) in a few seconds; if it "
            "lasts, fix the cluster by hand"
        )

    # Moves a run left unfinished: finished to where they were going, first. A slot whose
    # other end is not a live node is set back to stable on the node that still has it.
    stables, finishes = [], []
    pending = {}
    for port in live_ports:
        node = myself[port]
        if node.is_replica:
            continue  # Valkey 8 copies the states to the replicas: the primary's count
        for slot, target in node.migrating.items():
            pending.setdefault(slot, {})["migrating"] = (port, target)
        for slot, source in node.importing.items():
            pending.setdefault(slot, {})["importing"] = (port, source)
    for slot in sorted(pending):
        states = pending[slot]
        src = dst = None
        bad = []
        if "migrating" in states:
            port, target = states["migrating"]
            if target in port_of:
                src, dst = port, port_of[target]
            else:
                bad.append((port, f"migrating to {target}, which is not a live node"))
        if "importing" in states:
            port, source = states["importing"]
            if source in port_of and (dst is None or dst == port):
                src_i = port_of[source]
                if src is None or src == src_i:
                    src, dst = src_i, port
                else:
                    bad.append((port, f"importing from {source}, but {src} migrates it"))
            else:
                bad.append((port, f"importing from {source}, which is not where it comes from"))
        if src is not None and owner[slot] not in (src, dst):
            bad += [
                (p, f"moving between {src} and {dst}, held by {owner[slot]}") for p in (src, dst)
            ]
            src = None
        for port, why in bad:
            stables.append(Action(STABLE, port, slots=(slot, slot), note=why))
        if src is None or bad:
            continue
        finishes.append(
            Action(
                MOVE,
                src,
                target_port=dst,
                node_id=myself[dst].node_id,
                source_id=myself[src].node_id,
                slots=(slot, slot),
                importing=owner[slot] != dst,
                migrating=owner[slot] == src,
                note="finish",
            )
        )
        owner[slot] = dst

    # Each shard's leader (see the module docstring).
    count = {}
    for port in owner:
        if port is not None:
            count[port] = count.get(port, 0) + 1
    stale_slots = {}
    for node in stale.values():
        stale_slots[node.node_id] = list(node.slots)
    takeovers, early_replicas, addslots, replicas_first, replicas_last = [], [], [], [], []
    failovers = []
    leader_of, after = {}, {}
    for shard in range(shape.shards):
        members = shape.members(shard)
        first, last = shape.slot_range(shard)
        holders = [p for p in members if myself[p].is_primary and count.get(p)]
        leader = None
        if holders:
            inside = {p: sum(1 for s in range(first, last + 1) if owner[s] == p) for p in holders}
            leader = max(holders, key=lambda p: (inside[p], count[p], -members.index(p)))
        else:
            for port in members:
                node = myself[port]
                if node.is_replica and stale_slots.get(node.primary_id):
                    # The shard's primary is gone (reset, lost its state): its replica
                    # takes its slots over (TAKEOVER: there may be no primary left to vote).
                    leader = port
                    takeovers.append(Action(TAKEOVER, port, node_id=node.primary_id))
                    for a, b in stale_slots[node.primary_id]:
                        for slot in range(a, b + 1):
                            if owner[slot] is None:
                                owner[slot] = port
                    break
        if leader is None:
            # Every member follows a node that leaves (it was promoted, e.g. after a failover,
            # and the shape has fewer replicas now): a member takes over gracefully, with its
            # primary's agreement (CLUSTER FAILOVER), the shard's primary port first.
            for port in members:
                node = myself[port]
                followed = port_of.get(node.primary_id) if node.is_replica else None
                if followed in leaving and count.get(followed):
                    leader = port
                    failovers.append(Action(FAILOVER, port, node_id=node.primary_id))
                    for slot in range(SLOTS):
                        if owner[slot] == followed:
                            owner[slot] = port
                    count[port], count[followed] = count.pop(followed), 0
                    break
        if leader is None:
            primaries = [p for p in members if myself[p].is_primary]
            if not primaries:
                port = members[0]
                follows = port_of.get(
                    myself[port].primary_id, f"the gone node {myself[port].primary_id}"
                )
                raise TopologyError(
                    f"shard {shard} (ports {members}) has no primary: port {port} is a replica "
                    f"of {follows}; fix the cluster by hand"
                )
            leader = (
                shape.primary_port(shard)
                if shape.primary_port(shard) in primaries
                else primaries[0]
            )
        leader_of[shard] = leader
        after[str(leader)] = f"primary {format_slots([(first, last)])}"

    # Slots nobody holds go to their shard's leader; slots another node holds move there.
    unowned, moves = {}, {}
    for shard in range(shape.shards):
        first, last = shape.slot_range(shard)
        leader = leader_of[shard]
        for slot in range(first, last + 1):
            if owner[slot] is None:
                unowned.setdefault(leader, []).append(slot)
            elif owner[slot] != leader:
                moves.setdefault((owner[slot], leader), []).append(slot)
    for leader in [leader_of[k] for k in range(shape.shards)]:
        for rng in _ranges(unowned.get(leader, [])):
            addslots.append(Action(ADDSLOTS, leader, slots=rng))
    move_actions = []
    for (src, dst), slots in moves.items():
        for rng in _ranges(slots):
            move_actions.append(
                Action(
                    MOVE,
                    src,
                    target_port=dst,
                    node_id=myself[dst].node_id,
                    source_id=myself[src].node_id,
                    slots=rng,
                )
            )
    move_actions.sort(key=lambda a: a.slots)

    for shard in range(shape.shards):
        leader = leader_of[shard]
        leader_id = myself[leader].node_id
        for port in shape.members(shard):
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
            elif count.get(port):
                # A primary that holds slots follows its leader once they have moved off.
                replicas_last.append(step)
            else:
                replicas_first.append(step)

    forgets = []
    for node_id in sorted(stale):
        for port in live_ports:
            if port in leaving:
                continue
            if any(n.node_id == node_id for n in parsed[port]):
                forgets.append(Action(FORGET, port, node_id=node_id))

    # Leaving nodes: once their slots are off and no remaining node follows them, every
    # remaining node forgets them, then each is reset (it forgets the others).
    leave_forgets, resets = [], []
    for lport in leaving_list:
        lid = myself[lport].node_id
        for port in shape.ports:
            if any(n.node_id == lid for n in parsed[port]):
                leave_forgets.append(
                    Action(
                        FORGET, port, node_id=lid, note=f"the node on port {lport}, which leaves"
                    )
                )
        resets.append(Action(RESET, lport, node_id=lid))
        after[str(lport)] = "removed"

    meets = []
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

    configs = []
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

    actions = (
        takeovers
        + early_replicas
        + forgets
        + meets
        + stables
        + finishes
        + failovers
        + addslots
        + replicas_first
        + move_actions
        + replicas_last
        + leave_forgets
        + resets
        + configs
    )
    order = list(map(str, shape.ports)) + [str(p) for p in leaving_list]
    return Plan(
        actions,
        summarize(shape, myself),
        {p: after[p] for p in order},
        live_ports=live_ports,
        leaving=leaving_list,
        primaries=sorted(
            set(leader_of.values()) | {a.port for a in finishes + move_actions},
            key=live_ports.index,
        ),
    )
