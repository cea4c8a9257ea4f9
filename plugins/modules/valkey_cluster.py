#!/usr/bin/python
# Copyright: (c) 2026, cachestack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: valkey_cluster
short_description: Form and keep a Valkey or Redis OSS cluster of nodes on one host
version_added: 0.1.0
description:
  - Brings the cluster-mode nodes listening on O(ports) of one host (all reached at
    O(login_host)) to the shape O(shards) primaries, each with O(replicas_per_shard)
    replicas, like an ElastiCache cluster-mode replication group's NumNodeGroups and
    ReplicasPerNodeGroup. Works with Valkey and Redis OSS (7.0 or later); it runs their
    command-line client, O(cli).
  - The first O(shards) ports are the primaries, in shard order; replica port number j
    (counted after the primaries) belongs to shard C(j % shards). Shard k owns the slots
    C(16384*k//shards) to C(16384*(k+1)//shards - 1).
  - It reads every node's C(CLUSTER NODES) (and C(CONFIG GET) of O(live_settings)), and
    those of the live nodes they know that are none of O(ports) (nodes that leave), plans
    what is missing and does only that, in this order - a replica whose primary is gone
    takes its slots over (C(CLUSTER FAILOVER TAKEOVER)); a node that is gone (reset, or
    lost its C(nodes.conf)) is forgotten by every node that still knows it
    (C(CLUSTER FORGET)); a node that the first port's node does not know, or that does not
    know it, is introduced (C(CLUSTER MEET)); a slot move that an earlier run left half done
    (a slot importing or migrating) is finished, to the node it was going to, or set back
    to stable when that node is gone; a shard whose slots nobody holds gets them on its
    primary (C(CLUSTER ADDSLOTSRANGE)); the new shards' replicas follow their primaries; the
    slots held by another node than their shard's leader move to it, keys and all; a node
    of a shard that does not follow the node holding the shard's slots is attached to it
    (C(CLUSTER REPLICATE)), so a node that was reset, or came back after its replica was
    promoted, re-joins as a replica of its shard; the nodes that leave are forgotten by
    every remaining node and reset (C(CLUSTER RESET SOFT)); a live setting that differs is
    set (C(CONFIG SET)). Then it waits until every node reports C(cluster_state:ok), the
    expected number of nodes and of shards.
  - Online resharding. More O(shards) - the new nodes (already running on their ports)
    are met and each shard's range is moved to its new primary. Fewer O(shards) - the
    leaving shards' slots move onto the remaining ones first, then their nodes leave as
    above (stopping them is the caller's job, as the returned RV(removed) lists them). Fewer
    O(replicas_per_shard) - the surplus replicas leave the same way; if a leaving replica
    had been promoted, a remaining node of its shard takes over first with its agreement
    (C(CLUSTER FAILOVER)).
  - A slot moves as C(valkey-cli --cluster reshard) moves it, with the server's own
    protocol - C(CLUSTER SETSLOT <slot> IMPORTING) on the target, C(MIGRATING) on the
    source, its keys with C(CLUSTER GETKEYSINSLOT) and C(MIGRATE ... REPLACE AUTH2 ... KEYS)
    in batches (the nodes connect to each other with the TLS they use between them), then
    C(CLUSTER SETSLOT <slot> NODE) on the target, the source and the other primaries.
    Clients are redirected meanwhile (ASK, then MOVED), so keys stay readable. Slots move
    in chunks of 1024, and the server saves each C(SETSLOT) to its C(nodes.conf), so
    moving a whole shard's range takes in the order of a minute on a small machine.
  - A run killed in the middle of a move leaves slots importing or migrating; the next
    run finishes them first. A rerun of a converged cluster changes nothing.
  - After a failover any node of a shard may hold the shard's slots; its other nodes
    follow it and the roles are not swapped back. Two nodes claiming the same slots (a
    primary back after its replica was promoted, for a moment) are read again until the
    cluster settles it, up to O(wait_timeout).
  - A converged cluster gives no action and C(changed=false).
  - Refused before any change - a shard none of whose nodes is a primary or can take
    over (all follow another shard's primary).
  - A node that does not answer (connection refused, wrong token, cluster mode off) fails
    the module, naming the port and the client's message, before any change.
options:
  ports:
    description:
      - The nodes' ports on O(login_host), O(shards) primaries first, then the replicas.
      - There must be O(shards) * (1 + O(replicas_per_shard)) of them.
    type: list
    elements: int
    required: true
  shards:
    description:
      - Number of shards (primaries holding slots).
    type: int
    default: 1
  replicas_per_shard:
    description:
      - Number of replicas of each shard's primary.
    type: int
    default: 1
  login_host:
    description:
      - Address of the host the nodes listen on; the nodes are also introduced to each
        other at this address.
    type: str
    default: 127.0.0.1
  cli:
    description:
      - The engine's command-line client, a name on the C(PATH) or a path.
    type: str
    default: valkey-cli
  tls:
    description:
      - Talk TLS to the nodes (C(--tls)).
    type: bool
    default: true
  ca_cert:
    description:
      - CA certificate file that verifies the nodes' certificates (C(--cacert)).
    type: path
  auth_token:
    description:
      - The AUTH token (C(requirepass)). It reaches the client through the
        C(REDISCLI_AUTH) environment variable, never its command line.
    type: str
  live_settings:
    description:
      - Settings every node must have at run time, compared with C(CONFIG GET) and set
        with C(CONFIG SET) where they differ (a new value, or one changed by hand).
      - Values are compared as C(CONFIG GET) prints them (C(maxmemory) in bytes, C(save)
        V("") for none).
    type: dict
    default: {}
  wait_timeout:
    description:
      - Seconds to wait for each step that needs the cluster to agree (a new node known, a
        takeover done) and, at the end, for C(cluster_state:ok) on every node.
      - V(0) does not wait for C(cluster_state:ok) at the end.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    description: Reads the nodes and reports the actions a run would take; changes nothing.
  diff_mode:
    support: full
    description:
      - Each port's role (its slots, or the port it follows), before and after; a node that
        leaves is C(removed) after.
notes:
  - The ports keep their shard across shapes only if the caller lays them out so (the
    sandbox_cache role gives shard k's nodes ports of their own); a node that the new
    shape puts in another shard has its slots moved off and follows its new shard.
  - Automatic failover (the cluster promoting a replica when its primary stops) is the
    server's, after C(cluster-node-timeout); it needs a majority of the primaries to vote,
    so three shards or more. This module repairs what is left - the old primary, started
    again, follows the promoted node.
seealso:
  - module: cachestack.aws.elasticache_replication_group
  - name: Valkey cluster specification
    description: CLUSTER NODES, MEET, REPLICATE, FORGET, SETSLOT, FAILOVER and slot migration.
    link: https://valkey.io/topics/cluster-spec/
author:
  - cachestack maintainers (@cachestack)
"""

EXAMPLES = r"""
- name: Form a cluster of one shard, a primary and a replica, on ports 6379 and 6380
  cachestack.aws.valkey_cluster:
    ports: [6379, 6380]
    shards: 1
    replicas_per_shard: 1
    ca_cert: /etc/valkey/tls/ca.crt
    auth_token: "{{ cache_auth_token }}"

- name: Three shards with one replica each on Redis OSS, keeping the memory settings
  cachestack.aws.valkey_cluster:
    ports: "{{ range(7000, 7006) | list }}"
    shards: 3
    replicas_per_shard: 1
    cli: redis-cli
    ca_cert: /etc/redis/tls/ca.crt
    auth_token: "{{ cache_auth_token }}"
    live_settings:
      maxmemory: "268435456"
      maxmemory-policy: volatile-lru
  register: cluster

- name: Show what was done
  ansible.builtin.debug:
    msg: "{{ cluster.actions | map(attribute='description') }}"
"""

RETURN = r"""
actions:
  description:
    - The actions taken (in check mode, that a run would take), in order.
    - C(action) is one of C(takeover), C(failover), C(forget), C(meet), C(stable),
      C(move), C(addslots), C(replicate), C(reset), C(set_config); C(settings) lists the
      names only; C(move) runs on the source C(port) and sends C(slots) (first, last) to
      C(target_port).
  returned: success
  type: list
  elements: dict
  sample:
    - action: addslots
      port: 6379
      slots: [0, 16383]
      description: "6379: CLUSTER ADDSLOTSRANGE 0 16383"
    - action: replicate
      port: 6380
      target_port: 6379
      node_id: 8a2d6e6f0b7d4f2e9c1b3a5d7e9f1a3b5c7d9e1f
      description: >-
        6380: CLUSTER REPLICATE the node on port 6379 (8a2d6e6f0b7d4f2e9c1b3a5d7e9f1a3b5c7d9e1f)
removed:
  description:
    - Ports of the nodes that left the cluster (reset, still running; in check mode, that
      would leave). The caller stops them.
  returned: success
  type: list
  elements: int
  sample: [6391, 6392]
topology:
  description: Each port's role after the run (in check mode, the expected one).
  returned: success
  type: dict
  sample: {"6379": "primary 0-16383", "6380": "replica of 6379"}
cluster_info:
  description:
    - C(CLUSTER INFO) of the first port's node after the wait.
    - Not in check mode, nor with O(wait_timeout=0).
  returned: when waited
  type: dict
  sample: {"cluster_state": "ok", "cluster_known_nodes": "2", "cluster_size": "1"}
"""

import contextlib
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cachestack.aws.plugins.module_utils._cluster_topology import (
    ADDSLOTS,
    ERROR_RE,
    FAILOVER,
    FORGET,
    MEET,
    MOVE,
    REPLICATE,
    RESET,
    SET_CONFIG,
    STABLE,
    TAKEOVER,
    Shape,
    TopologyError,
    Unsettled,
    leaving_ports,
    parse_cluster_info,
    parse_cluster_nodes,
    plan,
    summarize,
)

# Slots handled together (one cli process per node and step), and keys per MIGRATE.
SLOT_CHUNK = 1024
KEY_BATCH = 100
# MIGRATE's own timeout for one batch, in milliseconds.
MIGRATE_TIMEOUT_MS = 5000
_ELEMENT_RE = re.compile(r'^\s*([0-9]+)\) "(.*)"$')
_ESCAPES = {"n": 10, "r": 13, "t": 9, "a": 7, "b": 8, '"': 34, "\\": 92}


def unquote(text: str) -> bytes:
    """A string as the cli prints it quoted (sdscatrepr: \\n, \\", \\xHH ...) -> its bytes."""
    out = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "x" and i + 3 < len(text):
                out.append(int(text[i + 2 : i + 4], 16))
                i += 4
                continue
            out.append(_ESCAPES.get(nxt, ord(nxt)))
            i += 2
            continue
        out += char.encode("utf-8")
        i += 1
    return bytes(out)


def quote(key: bytes) -> str:
    """Bytes -> a double-quoted argument the cli reads back exactly (every byte \\xHH)."""
    return '"' + "".join(f"\\x{b:02x}" for b in key) + '"'


def parse_key_lists(text: str) -> list:
    """The output of several GETKEYSINSLOT read with --no-raw -> one list of keys per reply."""
    replies = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.strip() == "(empty array)":
            replies.append([])
            continue
        match = _ELEMENT_RE.match(line)
        if not match:
            raise TopologyError(f"unexpected GETKEYSINSLOT line {line[:80]!r}")
        if match.group(1) == "1" or not replies:
            replies.append([])
        replies[-1].append(unquote(match.group(2)))
    return replies


class CliError(Exception):
    """The client failed, or the node answered with an error."""


class _Final(Exception):
    """A planning error that waiting does not cure: fail at once."""


class Cluster:
    """Runs the engine's client against the nodes on one host."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        params = module.params
        self.binary = module.get_bin_path(params["cli"], required=True)
        self.base = [self.binary]
        if params["tls"]:
            self.base.append("--tls")
        if params["ca_cert"]:
            self.base += ["--cacert", params["ca_cert"]]
        self.base += ["-h", params["login_host"]]
        self.host = params["login_host"]
        # The token goes by the environment the client reads (REDISCLI_AUTH), never argv.
        self.environ = {"REDISCLI_AUTH": params["auth_token"]} if params["auth_token"] else {}

    def run(self, port: int, *args: object) -> str:
        argv = self.base + ["-p", str(port)] + [str(a) for a in args]
        rc, out, err = self.module.run_command(argv, environ_update=self.environ)
        if rc != 0 or ERROR_RE.search(out):
            message = " ".join((out.strip() + " " + err.strip()).split())
            raise CliError(
                f"port {port}: {' '.join(str(a) for a in args[:2])}: {message or f'rc {rc}'}"
            )
        return out

    def ok(self, port: int, *args: object) -> None:
        out = self.run(port, *args)
        if out.strip() != "OK":
            raise CliError(
                f"port {port}: {' '.join(str(a) for a in args[:2])}: {out.strip()[:200]}"
            )

    def batch(self, port: int, what: str, lines: list, no_raw: bool = False) -> str:
        """Several commands in one client process, on its standard input (one connection;
        nothing of them on a command line, as MIGRATE's AUTH2 holds the token)."""
        argv = self.base + ["-p", str(port)] + (["--no-raw"] if no_raw else [])
        rc, out, err = self.module.run_command(
            argv, data="\n".join(lines), environ_update=self.environ
        )
        if rc != 0 or ERROR_RE.search(out):
            errors = [x for x in out.splitlines() if ERROR_RE.match(x)]
            message = " ".join(((errors[0] if errors else out.strip()) + " " + err.strip()).split())
            raise CliError(f"port {port}: {what}: {message[:300] or f'rc {rc}'}")
        return out

    def views(self, ports: list) -> dict:
        views = {}
        for port in ports:
            try:
                views[port] = self.run(port, "cluster", "nodes")
            except CliError as exc:
                views[port] = exc
        return views

    def live(self, ports: list, names: list) -> dict:
        live = {}
        for port in ports:
            try:
                live[port] = self.run(port, "config", "get", *names)
            except CliError as exc:
                live[port] = exc
        return live

    def myself(self, port: int):
        return next(n for n in parse_cluster_nodes(self.run(port, "cluster", "nodes")) if n.myself)

    def wait_for(self, what: str, test, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                if test():
                    return
            except (CliError, TopologyError) as exc:
                last = exc
            if time.monotonic() >= deadline:
                raise TopologyError(
                    f"timed out after {timeout} s waiting for {what}"
                    + (f" ({last})" if last else "")
                )
            time.sleep(0.5)


def took_over(node) -> bool:
    return node.is_primary and bool(node.slots)


def knows_everyone(cluster: Cluster, ports: list) -> bool:
    ids = {cluster.myself(port).node_id for port in ports}
    for port in ports:
        known = {
            n.node_id
            for n in parse_cluster_nodes(cluster.run(port, "cluster", "nodes"))
            if not n.handshake
        }
        if not ids <= known:
            return False
    return True


def move_keys(cluster: Cluster, source: int, target: int, slots: list, token) -> None:
    """MIGRATE every key of ``slots`` from ``source`` to ``target`` (the nodes connect over
    the TLS they use between them; AUTH2 with the token), in batches, until none is left."""
    auth = f" AUTH2 default {token}" if token else ""
    for _round in range(10000):  # bounded: each round moves up to KEY_BATCH keys per slot
        counts = cluster.batch(
            source, "CLUSTER COUNTKEYSINSLOT", [f"CLUSTER COUNTKEYSINSLOT {s}" for s in slots]
        ).split()
        if len(counts) != len(slots):
            raise CliError(
                f"port {source}: COUNTKEYSINSLOT gave {len(counts)} answers for {len(slots)} slots"
            )
        full = [s for s, n in zip(slots, counts, strict=True) if int(n) > 0]
        if not full:
            return
        listing = cluster.batch(
            source,
            "CLUSTER GETKEYSINSLOT",
            [f"CLUSTER GETKEYSINSLOT {s} {KEY_BATCH}" for s in full],
            no_raw=True,
        )
        replies = parse_key_lists(listing)
        if len(replies) != len(full):
            raise CliError(
                f"port {source}: GETKEYSINSLOT gave {len(replies)} answers for {len(full)} slots"
            )
        lines = [
            f'MIGRATE {cluster.host} {target} "" 0 {MIGRATE_TIMEOUT_MS} REPLACE{auth} KEYS '
            + " ".join(quote(k) for k in keys)
            for keys in replies
            if keys
        ]
        if lines:
            cluster.batch(source, "MIGRATE", lines)
    raise TopologyError(f"port {source}: keys of slots {slots[0]}-{slots[-1]} kept coming back")


def move_slots(cluster: Cluster, action, primaries: list) -> None:
    """As valkey-cli --cluster reshard: per chunk of slots, IMPORTING on the target,
    MIGRATING on the source, the keys, then SETSLOT NODE on the target, the source and
    the other primaries (the cluster's gossip tells the replicas)."""
    source, target = action.port, action.target_port
    first, last = action.slots
    others = [p for p in primaries if p not in (source, target)]
    for start in range(first, last + 1, SLOT_CHUNK):
        slots = list(range(start, min(last, start + SLOT_CHUNK - 1) + 1))
        if action.importing:
            cluster.batch(
                target,
                "CLUSTER SETSLOT IMPORTING",
                [f"CLUSTER SETSLOT {s} IMPORTING {action.source_id}" for s in slots],
            )
        if action.migrating:
            cluster.batch(
                source,
                "CLUSTER SETSLOT MIGRATING",
                [f"CLUSTER SETSLOT {s} MIGRATING {action.node_id}" for s in slots],
            )
        move_keys(cluster, source, target, slots, cluster.module.params["auth_token"])
        announce = [f"CLUSTER SETSLOT {s} NODE {action.node_id}" for s in slots]
        cluster.batch(target, "CLUSTER SETSLOT NODE", announce)
        try:
            cluster.batch(source, "CLUSTER SETSLOT NODE", announce)
        except CliError as exc:
            # The source may learn from the target first that it lost its last slot and
            # turn into a replica of it (cluster-allow-replica-migration): then it refuses
            # the rest, and closes the connection as it does.
            if "only with masters" not in str(exc) and "closed the connection" not in str(exc):
                raise
        for port in others:
            # A replica refuses it, and a node that misses it learns it by gossip.
            with contextlib.suppress(CliError):
                cluster.batch(port, "CLUSTER SETSLOT NODE", announce)


def execute(cluster: Cluster, actions: list, timeout: float, shape=None, primaries=None) -> None:
    mesh_checked = False
    for action in actions:
        if action.kind in (MOVE, FAILOVER) and not mesh_checked and shape is not None:
            # Nodes just met learn of each other by gossip, in a second or two; SETSLOT
            # and MIGRATE need every node to know the others.
            # A node also refuses the keys (CLUSTERDOWN) until it sees the cluster ok, which
            # a new node does only a moment after it learnt who holds every slot.
            cluster.wait_for(
                "every node to know every other and to see the cluster ok",
                lambda: (
                    knows_everyone(cluster, shape.ports)
                    and all(
                        parse_cluster_info(cluster.run(p, "cluster", "info")).get("cluster_state")
                        == "ok"
                        for p in shape.ports
                    )
                ),
                timeout,
            )
            mesh_checked = True
        if action.kind == TAKEOVER:
            cluster.ok(action.port, "cluster", "failover", "takeover")
            cluster.wait_for(
                f"port {action.port} to take its gone primary's slots over",
                lambda a=action: took_over(cluster.myself(a.port)),
                timeout,
            )
        elif action.kind == FAILOVER:
            cluster.ok(action.port, "cluster", "failover")
            cluster.wait_for(
                f"port {action.port} to take its leaving primary's slots over",
                lambda a=action: took_over(cluster.myself(a.port)),
                timeout,
            )
        elif action.kind == FORGET:
            cluster.ok(action.port, "cluster", "forget", action.node_id)
        elif action.kind == MEET:
            cluster.ok(
                action.port, "cluster", "meet", cluster.host, action.target_port, action.bus_port
            )
        elif action.kind == STABLE:
            cluster.ok(action.port, "cluster", "setslot", action.slots[0], "stable")
        elif action.kind == ADDSLOTS:
            cluster.ok(action.port, "cluster", "addslotsrange", action.slots[0], action.slots[1])
        elif action.kind == MOVE:
            move_slots(cluster, action, primaries or [])
        elif action.kind == REPLICATE:
            # A node just met learns of the others by gossip, in a second or two.
            cluster.wait_for(
                f"port {action.port} to know the node on port {action.target_port}",
                lambda a=action: a.node_id in cluster.run(a.port, "cluster", "nodes"),
                timeout,
            )
            cluster.ok(action.port, "cluster", "replicate", action.node_id)
        elif action.kind == RESET:
            cluster.ok(action.port, "cluster", "reset", "soft")
        elif action.kind == SET_CONFIG:
            pairs = [x for name in sorted(action.settings) for x in (name, action.settings[name])]
            cluster.ok(action.port, "config", "set", *pairs)
        else:  # pragma: no cover - the planner makes no other kind
            raise TopologyError(f"unknown action {action.kind}")


def wait_converged(cluster: Cluster, shape: Shape, timeout: float) -> dict:
    expected = {
        "cluster_state": "ok",
        "cluster_known_nodes": str(len(shape.ports)),
        "cluster_size": str(shape.shards),
    }
    infos = {}

    def converged() -> bool:
        for port in shape.ports:
            infos[port] = parse_cluster_info(cluster.run(port, "cluster", "info"))
            if any(infos[port].get(k) != v for k, v in expected.items()):
                return False
        return True

    try:
        cluster.wait_for("cluster_state:ok on every node", converged, timeout)
    except TopologyError as exc:
        seen = {p: {k: i.get(k) for k in expected} for p, i in infos.items()}
        raise TopologyError(f"{exc}; expected {expected}, saw {seen}") from None
    return infos[shape.ports[0]]


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            ports=dict(type="list", elements="int", required=True),
            shards=dict(type="int", default=1),
            replicas_per_shard=dict(type="int", default=1),
            login_host=dict(type="str", default="127.0.0.1"),
            cli=dict(type="str", default="valkey-cli"),
            tls=dict(type="bool", default=True),
            ca_cert=dict(type="path"),
            auth_token=dict(type="str", no_log=True),
            live_settings=dict(type="dict", default={}),
            wait_timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        shape = Shape(params["ports"], params["shards"], params["replicas_per_shard"])
        cluster = Cluster(module)
        settings = {str(k): "" if v is None else str(v) for k, v in params["live_settings"].items()}
        the_plan = None

        def planned() -> bool:
            nonlocal the_plan
            try:
                views = cluster.views(shape.ports)
                views.update(cluster.views(leaving_ports(shape, views)))
                live = cluster.live(shape.ports, sorted(settings)) if settings else None
                the_plan = plan(shape, views, settings, live)
            except Unsettled:
                raise
            except (CliError, TopologyError) as exc:
                raise _Final(exc) from None
            return True

        # A disagreement the cluster settles by itself (a primary back after a failover
        # still claims its old slots for a moment) is read again until it is settled.
        cluster.wait_for(
            "the nodes to agree on who holds each slot", planned, max(params["wait_timeout"], 1)
        )
    except _Final as exc:
        module.fail_json(msg=str(exc.args[0]))
    except TopologyError as exc:
        module.fail_json(msg=str(exc))

    result = dict(
        changed=the_plan.changed,
        actions=[a.as_dict() for a in the_plan.actions],
        topology=the_plan.after,
        removed=the_plan.leaving,
    )
    if module._diff:
        result["diff"] = dict(before=the_plan.before, after=the_plan.after)
    if module.check_mode:
        module.exit_json(**result)

    timeout = max(params["wait_timeout"], 1)
    try:
        execute(cluster, the_plan.actions, timeout, shape, the_plan.primaries)
        if params["wait_timeout"] > 0:
            result["cluster_info"] = wait_converged(cluster, shape, params["wait_timeout"])
        myself = {port: cluster.myself(port) for port in shape.ports}
        result["topology"] = summarize(shape, myself)
        if module._diff:
            gone = {str(p): "removed" for p in the_plan.leaving}
            result["diff"]["after"] = {**result["topology"], **gone}
    except (CliError, TopologyError) as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
