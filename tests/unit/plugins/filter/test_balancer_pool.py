"""Unit tests for plugins/filter/balancer_pool.py, the rollout's drain guard: HAProxy's
``show stat`` and the ALB's target health read into one shape, the decision whether a
server may leave its pool, and the refusal's message. The HAProxy samples are the first
columns (and check_desc) of HAProxy 3.0's answers in molecule/sandbox_balancer; the
molecule scenario and tests/integration/aws/test_aws_fleet.py run the guard for real.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / ".collections"
if str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible_collections.cachestack.aws.plugins.filter import (  # noqa: E402
    balancer_pool as bp,
)

HEADER = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,"
    "wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,"
    "lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,"
    "check_desc"
)
ROWS = {
    "UP": "web,{name},0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,15,0,,1,3,1,,0,,2,0,,0,"
    "L7OK,200,0,0,Layer7 check passed",
    "DOWN": "web,{name},0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,2,1,3,3,,1,3,2,,0,,2,0,,0,"
    "L7STS,404,2,0,Layer7 wrong status",
    "DOWN 1/2": "web,{name},0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN 1/2,1,1,0,2,1,4,4,,1,3,2,,0,,2,0,,0,"
    "L7OK,200,1,0,Layer7 check passed",
    "UP 1/2": "web,{name},0,0,1,1,,3,0,0,,0,,0,0,0,0,UP 1/2,1,1,0,1,0,4,0,,1,3,2,,0,,2,0,,0,"
    "L7STS,503,1,0,Layer7 wrong status",
    "DRAIN": "web,{name},0,0,2,2,,5,0,0,,0,,0,0,0,0,DRAIN,1,1,0,0,0,13,0,,1,3,1,,0,,2,0,,0,"
    "L7OK,200,1,0,Layer7 check passed",
    "MAINT": "web,{name},0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,1,1,0,2,1,5,5,,1,3,2,,0,,2,0,,0,,,,0,",
    "MAINT (resolution)": "web,{name},0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT (resolution),1,1,0,0,0,"
    "9,9,,1,3,2,,0,,2,0,,0,,,,0,",
}


def stat(**servers: str) -> str:
    """A ``show stat web 4 -1`` answer: each server (underscores for dashes) in a state."""
    rows = [ROWS[state].format(name=name.replace("_", "-")) for name, state in servers.items()]
    return "\n".join([HEADER, *rows, ""]) + "\n"


def peers(text: str, server: str, batch: list[str] | None = None) -> dict:
    return bp.drain_peers(bp.haproxy_servers(text), server, batch, "haproxy")


def test_haproxy_servers_reads_each_server_s_columns() -> None:
    servers = bp.haproxy_servers(stat(web_1="UP", web_2="DOWN"))
    assert sorted(servers) == ["web-1", "web-2"]
    assert servers["web-1"]["status"] == "UP"
    assert servers["web-1"]["scur"] == "0"
    assert servers["web-2"]["status"] == "DOWN"
    assert servers["web-2"]["detail"] == "last check L7STS 404"
    assert servers["web-2"]["check_desc"] == "Layer7 wrong status"


def test_haproxy_servers_skips_other_backends_totals_and_an_empty_answer() -> None:
    text = stat(web_1="UP") + (
        "web,BACKEND,0,0,0,0,998,0,0,0,0,0,,0,0,0,0,UP,2,2,0,,0,3,0,,1,3,0,,0,,1,0,,0,,,,0,\n"
        "page,FRONTEND,,,0,0,9972,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,,0,\n"
        "api,web-9,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,15,0,,1,3,1,,0,,2,0,,0,,,,0,\n"
    )
    assert list(bp.haproxy_servers(text)) == ["web-1"]
    assert list(bp.haproxy_servers(text, "api")) == ["web-9"]
    assert bp.haproxy_servers("") == {}
    assert bp.haproxy_servers(None) == {}
    # MAINT has no last check.
    assert bp.haproxy_servers(stat(web_1="MAINT"))["web-1"]["detail"] == ""


def test_an_up_server_drains_when_another_is_up() -> None:
    found = peers(stat(web_1="UP", web_2="UP"), "web-1")
    assert found == {
        "state": "UP",
        "serving": True,
        "others": {"web-2": "UP (last check L7OK 200)"},
        "up": ["web-2"],
        "down": [],
        "batch": [],
        "ok": True,
    }


@pytest.mark.parametrize(
    "other", ["DOWN", "DOWN 1/2", "UP 1/2", "DRAIN", "MAINT", "MAINT (resolution)"]
)
def test_an_up_server_does_not_drain_when_no_other_is_fully_up(other: str) -> None:
    found = peers(stat(web_1="UP", web_2=other), "web-1")
    assert found["serving"] is True
    assert found["up"] == []
    assert found["down"] == ["web-2"]
    assert found["ok"] is False


def test_a_server_failing_its_checks_still_serves_so_it_is_guarded() -> None:
    found = peers(stat(web_1="UP 1/2", web_2="DOWN"), "web-1")
    assert found["serving"] is True
    assert found["ok"] is False


@pytest.mark.parametrize("state", ["DOWN", "DOWN 1/2", "DRAIN", "MAINT", "MAINT (resolution)"])
def test_a_server_that_serves_nothing_drains_whatever_the_others(state: str) -> None:
    found = peers(stat(web_1="DOWN", web_2=state), "web-2")
    assert found["state"] == state
    assert found["serving"] is False
    assert found["ok"] is True


def test_a_server_the_pool_does_not_hold_is_left_to_the_drain_itself() -> None:
    found = peers(stat(web_1="UP"), "web-3")
    assert (found["state"], found["serving"], found["ok"]) == ("not found", False, True)


def test_the_batch_s_other_servers_do_not_count() -> None:
    text = stat(web_1="UP", web_2="UP", web_3="DOWN", web_4="UP")
    found = peers(text, "web-1", ["web-1", "web-2"])
    assert (found["up"], found["down"], found["batch"]) == (["web-4"], ["web-3"], ["web-2"])
    assert found["ok"] is True
    found = peers(text, "web-1", ["web-1", "web-2", "web-4"])
    assert (found["up"], found["ok"]) == ([], False)
    found = peers(stat(web_1="UP", web_2="UP"), "web-1", ["web-1", "web-2"])
    assert (found["others"], found["ok"]) == ({}, False)


DESCRIBED = [
    {
        "target": {"id": "i-1", "port": 80},
        "target_health": {"state": "healthy"},
    },
    {
        "target": {"id": "i-2", "port": 80},
        "target_health": {
            "state": "unused",
            "reason": "Target.InvalidState",
            "description": "Target is in the stopped state",
        },
    },
    {
        "target": {"id": "i-9", "port": 80},
        "target_health": {"state": "draining", "reason": "Target.DeregistrationInProgress"},
    },
]
HOSTS = {"i-1": "203.0.113.1", "i-2": "203.0.113.2", "i-3": "203.0.113.3"}


def test_alb_targets_names_the_web_hosts_and_adds_those_not_registered() -> None:
    targets = bp.alb_targets(DESCRIBED, HOSTS)
    assert targets == {
        "203.0.113.1": {"status": "healthy", "detail": "i-1", "id": "i-1"},
        "203.0.113.2": {"status": "unused", "detail": "i-2, Target.InvalidState", "id": "i-2"},
        "i-9": {
            "status": "draining",
            "detail": "Target.DeregistrationInProgress",
            "id": "i-9",
        },
        "203.0.113.3": {"status": "not registered", "detail": "i-3", "id": "i-3"},
    }
    assert list(bp.alb_targets(DESCRIBED)) == ["i-1", "i-2", "i-9"]
    assert bp.alb_targets(None) == {}


def test_alb_a_healthy_target_drains_only_beside_another_healthy_one() -> None:
    targets = bp.alb_targets(DESCRIBED, HOSTS)
    found = bp.drain_peers(targets, "203.0.113.1", ["203.0.113.1"], "alb")
    assert found["serving"] is True
    assert found["ok"] is False
    assert found["down"] == ["203.0.113.2", "203.0.113.3", "i-9"]
    assert found["others"]["203.0.113.2"] == "unused (i-2, Target.InvalidState)"
    described = [*DESCRIBED, {"target": {"id": "i-3"}, "target_health": {"state": "healthy"}}]
    found = bp.drain_peers(bp.alb_targets(described, HOSTS), "203.0.113.1", None, "alb")
    assert (found["up"], found["ok"]) == (["203.0.113.3"], True)


@pytest.mark.parametrize("host", ["203.0.113.2", "203.0.113.3"])
def test_alb_a_target_that_is_not_healthy_drains_at_once(host: str) -> None:
    found = bp.drain_peers(bp.alb_targets(DESCRIBED, HOSTS), host, [host], "alb")
    assert (found["serving"], found["ok"]) == (False, True)


def test_drain_peers_refuses_what_it_cannot_read() -> None:
    with pytest.raises(AnsibleFilterError, match="kind must be one of haproxy, alb"):
        bp.drain_peers({}, "web-1", None, "nginx")
    with pytest.raises(AnsibleFilterError, match="servers must be a dict"):
        bp.drain_peers("web-1,UP", "web-1")


def test_the_refusal_names_the_server_the_others_and_the_repair() -> None:
    found = peers(stat(web_1="UP", web_2="DOWN", web_3="MAINT (resolution)"), "web-1")
    said = bp.drain_refusal(
        found, "web-1", "the balancer lb", 60, "fix --limit localhost,{servers}"
    )
    assert said == (
        "Not draining web-1: it is the last server that serves at the balancer lb, and taking it"
        " out would leave the site with none. The others: web-2: DOWN (last check L7STS 404);"
        " web-3: MAINT (resolution); none served within 60 s. Nothing was changed."
        " Repair web-2, web-3 first: fix --limit localhost,web-2,web-3, then run this again."
    )


def test_the_refusal_names_the_batch_or_says_the_server_is_alone() -> None:
    text = stat(web_1="UP", web_2="UP", web_3="DOWN")
    said = bp.drain_refusal(peers(text, "web-1", ["web-1", "web-2"]), "web-1", "lb", 5)
    assert "The others (not counting this batch's web-2): web-3: DOWN" in said
    assert said.endswith("Repair web-3 first, then run this again.")
    said = bp.drain_refusal(
        peers(stat(web_1="UP", web_2="UP"), "web-1", ["web-1", "web-2"]), "web-1", "lb", 5
    )
    assert "Every other server leaves in this batch (web-2): a smaller batch" in said
    assert "Repair" not in said
    said = bp.drain_refusal(peers(stat(web_1="UP"), "web-1"), "web-1", "lb", 5)
    assert "It is the only server of the pool. Nothing was changed." in said


def test_the_filters_are_registered() -> None:
    assert set(bp.FilterModule().filters()) == {
        "haproxy_servers",
        "alb_targets",
        "drain_peers",
        "drain_refusal",
    }
