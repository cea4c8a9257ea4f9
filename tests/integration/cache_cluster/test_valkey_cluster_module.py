"""cachestack.aws.valkey_cluster against real nodes (Valkey 8.1 and Redis OSS 8.0; TLS, AUTH,
cluster mode), through ansible-playbook: a 1x1 cluster forms from scratch, a second run
changes nothing, a node reset by hand (CLUSTER RESET HARD) re-joins as the replica."""

from __future__ import annotations

from tests.integration.cache_cluster.conftest import Nodes


def check_formed(nodes: Nodes) -> None:
    primary, replica = nodes.nodes
    for node in nodes.nodes:
        info = nodes.command(node, "CLUSTER INFO")
        assert (
            info["cluster_state"],
            str(info["cluster_known_nodes"]),
            str(info["cluster_size"]),
        ) == ("ok", "2", "1")
    me = nodes.myself(primary)
    assert "master" in me["flags"] and me["slots"] == [["0", "16383"]]
    assert nodes.myself(replica)["master_id"] == me["node_id"]


def test_forms_stays_and_rejoins_a_reset_node(cluster_nodes: Nodes) -> None:
    nodes = cluster_nodes
    primary, replica = nodes.nodes
    p, r = nodes.ports

    plan = nodes.run(check=True, diff=True)
    assert not plan.failed, plan.result
    assert plan.changed and plan.kinds == [("meet", p), ("addslots", p), ("replicate", r)]
    assert plan.result["diff"]["before"] == {
        str(p): "primary without slots",
        str(r): "primary without slots",
    }
    assert plan.result["diff"]["after"] == {str(p): "primary 0-16383", str(r): f"replica of {p}"}
    assert nodes.myself(primary)["slots"] == []  # check mode changed nothing

    first = nodes.run(diff=True)
    assert not first.failed, first.result
    assert first.changed and first.kinds == [("meet", p), ("addslots", p), ("replicate", r)]
    assert first.result["topology"] == {str(p): "primary 0-16383", str(r): f"replica of {p}"}
    assert first.result["cluster_info"]["cluster_state"] == "ok"
    check_formed(nodes)

    second = nodes.run()
    assert not second.failed, second.result
    assert not second.changed and second.result["actions"] == []

    # By hand: the replica forgets everything and gets a new id; the primary keeps its old one.
    old_id = nodes.myself(replica)["node_id"]
    assert nodes.command(replica, "CLUSTER RESET", "HARD") in ("OK", True, b"OK")
    assert nodes.myself(replica)["node_id"] != old_id
    # A live setting changed by hand on the primary is set back.
    nodes.command(primary, "CONFIG SET", "maxmemory", "1048576")

    third = nodes.run(diff=True)
    assert not third.failed, third.result
    assert third.changed
    assert third.kinds == [("forget", p), ("meet", p), ("replicate", r), ("set_config", p)]
    assert third.result["diff"]["before"][str(r)] == "primary without slots"
    assert third.result["diff"]["after"] == {str(p): "primary 0-16383", str(r): f"replica of {p}"}
    check_formed(nodes)
    assert old_id not in nodes.command(primary, "CLUSTER NODES").__repr__()
    assert nodes.command(primary, "CONFIG GET", "maxmemory") == {"maxmemory": "0"}

    fourth = nodes.run()
    assert not fourth.failed and not fourth.changed, fourth.result

    for run in (plan, first, second, third, fourth):
        assert nodes.token not in run.stdout + run.stderr


def test_a_node_that_does_not_answer_fails_before_any_change(cluster_nodes: Nodes) -> None:
    nodes = cluster_nodes
    primary, replica = nodes.nodes
    replica.stop()
    run = nodes.run()
    assert run.failed and not run.changed
    assert (
        f"port {replica.port}" in run.result["msg"]
        and "did not answer CLUSTER NODES" in run.result["msg"]
    )
    assert nodes.myself(primary)["slots"] == []
    wrong = nodes.run(auth_token="not-the-token-at-all")
    assert wrong.failed and ("WRONGPASS" in wrong.result["msg"] or "NOAUTH" in wrong.result["msg"])
