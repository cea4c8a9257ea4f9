# Copyright: (c) 2026, cachestack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout's drain guard (playbooks/tasks/balancer.yml): before a web host that
serves leaves its load balancer, another server of the pool must serve.

Four filters, no I/O (the roles read the balancer and hand the answer here):

``haproxy_servers(text, backend)``
    HAProxy's runtime API ``show stat <backend> 4 -1`` (CSV, header line ``# pxname,...``)
    as ``{server: {"status": ..., "detail": ..., "scur": ..., <every column>}}``.
``alb_targets(descriptions, hosts)``
    ``community.aws.elb_target_group_info``'s ``targets_health_description`` as
    ``{host: {"status": state, "detail": "<instance id>, <reason>", "id": <instance id>}}``,
    with the web hosts the group does not hold as ``not registered``.
``drain_peers(servers, server, batch, kind)``
    What the guard decides, from either of the two: ``state`` of ``server`` ("not found"
    when the pool does not hold it), ``serving`` (whether it takes requests now),
    ``others`` (every other server outside ``batch``, by name: its state and detail),
    ``up`` (those of them that serve, sorted), ``down`` (the rest, sorted), ``batch`` (the
    batch's other servers, sorted, not counted) and ``ok``:
    true when ``server`` serves nothing (draining it costs nothing) or another server
    outside the batch serves.
``drain_refusal(peers, server, balancer, waited, repair)``
    The guard's message when ``peers`` (drain_peers's answer) is not ok: the server, the
    others and their states, and how to repair them (``repair``, in which ``{servers}``
    becomes the names of the others that do not serve, comma separated).

What serves: for HAProxy the status ``UP``, or ``no check``; the server itself also while
``UP 1/2`` (a failing check, still taking requests), which does not count for another
server, on its way out. For an ALB the state ``healthy``.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

KINDS = ("haproxy", "alb")


def _fail(message):
    raise AnsibleFilterError(message)


def haproxy_servers(text, backend="web"):
    """``show stat`` CSV (servers of ``backend``) by server name."""
    lines = [line for line in str(text or "").splitlines() if line.strip()]
    if not lines:
        return {}
    header = lines[0].lstrip("#").strip().split(",")
    servers = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        name = row.get("svname", "")
        if row.get("pxname") != backend or name in ("", "FRONTEND", "BACKEND"):
            continue
        check = " ".join(v for v in (row.get("check_status", ""), row.get("check_code", "")) if v)
        row["detail"] = f"last check {check}" if check else ""
        servers[name] = row
    return servers


def alb_targets(descriptions, hosts=None):
    """``targets_health_description`` (snake_case, as the module returns it) by server name:
    the web host's name for the instance IDs ``hosts`` maps (``{instance id: host}``), else
    the target's ID. A host of ``hosts`` whose instance the group does not hold is there too,
    ``not registered``."""
    hosts = dict(hosts or {})
    targets = {}
    for description in descriptions or []:
        target_id = (description.get("target") or {}).get("id")
        if not target_id:
            continue
        health = description.get("target_health") or {}
        # The ID in the detail when a host's name stands for it.
        detail = [target_id] if target_id in hosts else []
        detail += [health["reason"]] if health.get("reason") else []
        targets[hosts.get(target_id, target_id)] = {
            "status": health.get("state") or "unknown",
            "detail": ", ".join(detail),
            "id": target_id,
        }
    for target_id, host in hosts.items():
        if host not in targets:
            targets[host] = {"status": "not registered", "detail": target_id, "id": target_id}
    return targets


def _serves(kind, status, itself):
    if kind == "alb":
        return status == "healthy"
    return status in ("UP", "no check") or (itself and status.startswith("UP "))


def drain_peers(servers, server, batch=None, kind="haproxy"):
    """The guard's decision for draining ``server`` out of ``servers``."""
    if kind not in KINDS:
        _fail(f"drain_peers: kind must be one of {', '.join(KINDS)} (got {kind!r})")
    if not isinstance(servers, dict):
        _fail(f"drain_peers: servers must be a dict by server name (got {type(servers).__name__})")
    leaving = {str(name) for name in batch or []} | {str(server)}
    mine = servers.get(server)
    state = mine.get("status", "") if mine else "not found"
    others = {}
    up = []
    for name in sorted(servers):
        if name in leaving:
            continue
        status = servers[name].get("status", "")
        detail = servers[name].get("detail", "")
        others[name] = f"{status} ({detail})" if detail else status
        if _serves(kind, status, itself=False):
            up.append(name)
    serving = bool(mine) and _serves(kind, state, itself=True)
    return {
        "state": state,
        "serving": serving,
        "others": others,
        "up": up,
        "down": [name for name in others if name not in up],
        "batch": sorted(leaving - {str(server)}),
        "ok": not serving or bool(up),
    }


def drain_refusal(peers, server, balancer, waited, repair=""):
    """Why ``server`` is not drained, naming the others and what repairs them."""
    said = [
        f"Not draining {server}: it is the last server that serves at {balancer}, and taking"
        " it out would leave the site with none."
    ]
    batch = ", ".join(peers.get("batch") or [])
    others = "; ".join(f"{name}: {state}" for name, state in (peers.get("others") or {}).items())
    down = list(peers.get("down") or [])
    if others:
        counted = f" (not counting this batch's {batch})" if batch else ""
        said.append(f"The others{counted}: {others}; none served within {waited} s.")
    elif batch:
        said.append(
            f"Every other server leaves in this batch ({batch}): a smaller batch"
            " (cachestack_web_serial) leaves one serving."
        )
    else:
        said.append("It is the only server of the pool.")
    said.append("Nothing was changed.")
    if down:
        how = f": {repair.replace('{servers}', ','.join(down))}" if repair else ""
        said.append(f"Repair {', '.join(down)} first{how}, then run this again.")
    return " ".join(said)


class FilterModule:
    """cachestack.aws's balancer pool filters."""

    def filters(self):
        return {
            "haproxy_servers": haproxy_servers,
            "alb_targets": alb_targets,
            "drain_peers": drain_peers,
            "drain_refusal": drain_refusal,
        }
