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
  - It reads every node's C(CLUSTER NODES) (and C(CONFIG GET) of O(live_settings)), plans
    what is missing and does only that, in this order - a replica whose primary is gone
    takes its slots over (C(CLUSTER FAILOVER TAKEOVER)); a node that is gone (reset, or
    lost its C(nodes.conf)) is forgotten by every node that still knows it
    (C(CLUSTER FORGET)); a node that the first port's node does not know, or that does not
    know it, is introduced (C(CLUSTER MEET)); a shard whose slots nobody holds gets them on
    its primary (C(CLUSTER ADDSLOTSRANGE)); a node of a shard that does not follow the
    node holding the shard's slots is attached to it (C(CLUSTER REPLICATE)), so a node that
    was reset re-joins as a replica of its shard; a live setting that differs is set
    (C(CONFIG SET)). Then it waits until every node reports C(cluster_state:ok), the
    expected number of nodes and of shards.
  - After a failover any node of a shard may hold the shard's slots; its other nodes
    follow it and the roles are not swapped back.
  - A converged cluster gives no action and C(changed=false).
  - Refused, with an error naming the shape settings and before any change, as not
    supported yet - a formed cluster whose slots are spread otherwise than the shape
    gives (for example after O(shards) changed, which needs moving slots), and a live
    node of the cluster that is not one of O(ports) (for example after
    O(replicas_per_shard) went down, which needs removing nodes). More replicas per shard
    is a plain join and works.
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
    description: Each port's role (its slots, or the port it follows), before and after.
notes:
  - Moving slots between shards (resharding) and removing nodes are not supported yet.
seealso:
  - module: cachestack.aws.elasticache_replication_group
  - name: Valkey cluster specification
    description: CLUSTER NODES, MEET, REPLICATE, FORGET and FAILOVER TAKEOVER.
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
    - C(action) is one of C(takeover), C(forget), C(meet), C(addslots), C(replicate),
      C(set_config); C(settings) lists the names only.
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

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cachestack.aws.plugins.module_utils._cluster_topology import (
    ADDSLOTS,
    ERROR_RE,
    FORGET,
    MEET,
    REPLICATE,
    SET_CONFIG,
    TAKEOVER,
    Shape,
    TopologyError,
    parse_cluster_info,
    parse_cluster_nodes,
    plan,
    summarize,
)


class CliError(Exception):
    """The client failed, or the node answered with an error."""


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


def execute(cluster: Cluster, actions: list, timeout: float) -> None:
    for action in actions:
        if action.kind == TAKEOVER:
            cluster.ok(action.port, "cluster", "failover", "takeover")
            cluster.wait_for(
                f"port {action.port} to take its gone primary's slots over",
                lambda a=action: took_over(cluster.myself(a.port)),
                timeout,
            )
        elif action.kind == FORGET:
            cluster.ok(action.port, "cluster", "forget", action.node_id)
        elif action.kind == MEET:
            cluster.ok(
                action.port, "cluster", "meet", cluster.host, action.target_port, action.bus_port
            )
        elif action.kind == ADDSLOTS:
            cluster.ok(action.port, "cluster", "addslotsrange", action.slots[0], action.slots[1])
        elif action.kind == REPLICATE:
            # A node just met learns of the others by gossip, in a second or two.
            cluster.wait_for(
                f"port {action.port} to know the node on port {action.target_port}",
                lambda a=action: a.node_id in cluster.run(a.port, "cluster", "nodes"),
                timeout,
            )
            cluster.ok(action.port, "cluster", "replicate", action.node_id)
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
        views = cluster.views(shape.ports)
        live = cluster.live(shape.ports, sorted(settings)) if settings else None
        the_plan = plan(shape, views, settings, live)
    except TopologyError as exc:
        module.fail_json(msg=str(exc))

    result = dict(
        changed=the_plan.changed,
        actions=[a.as_dict() for a in the_plan.actions],
        topology=the_plan.after,
    )
    if module._diff:
        result["diff"] = dict(before=the_plan.before, after=the_plan.after)
    if module.check_mode:
        module.exit_json(**result)

    timeout = max(params["wait_timeout"], 1)
    try:
        execute(cluster, the_plan.actions, timeout)
        if params["wait_timeout"] > 0:
            result["cluster_info"] = wait_converged(cluster, shape, params["wait_timeout"])
        myself = {port: cluster.myself(port) for port in shape.ports}
        result["topology"] = summarize(shape, myself)
        if module._diff:
            result["diff"]["after"] = result["topology"]
    except (CliError, TopologyError) as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
