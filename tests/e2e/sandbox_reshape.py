"""The sandbox's cache reshaped online and repaired after a failover (issue 25), on the
deployed sandbox; collected by test_sandbox.py after its own tests. Its last test puts
the cache back to the default 1 shard x 1 replica.

Shard k's nodes are on 6379 + 6k (primary) and 6379 + 6k + 1 (replica). Each reshape is a
rerun of site.yml with -e cachestack_cache_shards=N under a request loop to 127.0.0.1:8080
(count and time bounded): no request may fail or answer 5xx, and keys written before are
read after. A primary stopped under the loop: no 5xx, its replica is primary within
FAILOVER_S (roles/sandbox_cache/defaults: cluster-node-timeout 5000 ms), the next run starts
it again as a replica (changed) and the one after changes nothing.
"""

from __future__ import annotations

import time

from tests.e2e.sandbox import (
    CACHE_KEY,
    PlaybookRun,
    RequestLoop,
    ansible_playbook,
    cache_units,
    cluster_info,
    cluster_nodes,
    get,
    in_container,
    redis_cli,
    secret,
    wait_for,
)

# The stated bound: cluster-node-timeout (5 s) plus the election (1 to 3 s), with margin.
FAILOVER_S = 10
THREE = ["6379", "6380", "6385", "6386", "6391", "6392"]
KEYS = {f"e2e:reshape:{i}": f"before {i}" for i in range(64)}


def reshape(shards: int) -> tuple[PlaybookRun, RequestLoop]:
    with RequestLoop(max_requests=5000, max_seconds=900, pause=0.1) as loop:
        run = ansible_playbook("site.yml", "-e", f"cachestack_cache_shards={shards}")
    assert secret("cache_auth_token") not in run.output
    return run, loop


def read_keys() -> dict[str, str]:
    return {key: redis_cli("6379", "GET", key).strip() for key in KEYS}


def primaries() -> dict[str, str]:
    """Port -> slots of every primary, by the first node's view."""
    return {n["port"]: n["slots"] for n in cluster_nodes() if "master" in n["flags"]}


def check_shape(ports: list[str], shards: int) -> None:
    assert cache_units() == sorted(ports)
    for port in ports:
        info = cluster_info(port)
        assert (info["cluster_state"], info["cluster_known_nodes"], info["cluster_size"]) == (
            "ok",
            str(len(ports)),
            str(shards),
        ), (port, info)
    nodes = cluster_nodes()
    assert sum("master" in n["flags"] for n in nodes) == shards
    assert sum("slave" in n["flags"] for n in nodes) == len(ports) - shards


def test_one_to_three_shards_online(first_deploy: PlaybookRun) -> None:
    assert cache_units() == ["6379", "6380"]
    for key, value in KEYS.items():
        assert redis_cli("6379", "SET", key, value).strip() == "OK"
    assert wait_for(lambda: get(timeout=60).headers.get("X-Cache") == "HIT", 60)
    app_value = redis_cli("6379", "GET", CACHE_KEY).strip()
    assert app_value

    run, loop = reshape(3)
    assert run.returncode == 0, run.tail(120)
    assert run.changed_hosts().get("cachestack-cache"), run.tail(120)
    print(f"1 -> 3 shards: {run.seconds:.0f} s; {loop.summary()}")
    assert loop.served > 0 and loop.failures == [], (loop.failures[:5], loop.summary())

    check_shape(THREE, 3)
    assert primaries() == {"6379": "0-5460", "6385": "5461-10921", "6391": "10922-16383"}
    assert read_keys() == KEYS
    # Every primary holds some of the keys now: they moved with their slots.
    for port in ("6379", "6385", "6391"):
        assert int(redis_cli(port, "DBSIZE").strip()) > 0, port
    assert get().status == 200


def test_three_shards_speak_tls_with_auth_only(first_deploy: PlaybookRun) -> None:
    for port in THREE:
        plain = in_container(
            "cachestack-cache", "valkey-cli", "-h", "127.0.0.1", "-p", port, "PING", check=False
        )
        assert "PONG" not in plain.stdout, port
        anonymous = in_container(
            "cachestack-cache",
            "valkey-cli",
            "--tls",
            "--cacert",
            "/etc/valkey/tls/ca.crt",
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "PING",
            check=False,
        )
        assert "NOAUTH" in anonymous.stdout + anonymous.stderr, port
        assert redis_cli(port, "PING").strip() == "PONG"
    page = wait_for(lambda: get(timeout=60), 60)
    assert page.status == 200 and page.headers.get("X-Cache") in ("HIT", "MISS")


def test_a_stopped_primary_fails_over_and_the_next_run_repairs_it(
    first_deploy: PlaybookRun,
) -> None:
    # The primary holding the page's key, and its replica.
    slot = int(redis_cli("6379", "CLUSTER", "KEYSLOT", CACHE_KEY).strip())
    nodes = cluster_nodes()
    by_id = {n["id"]: n for n in nodes}

    def holds(node: dict[str, str]) -> bool:
        for entry in node["slots"].split():
            first, _dash, last = entry.partition("-")
            if int(first) <= slot <= int(last or first):
                return True
        return False

    primary = next(n for n in nodes if "master" in n["flags"] and holds(n))
    replica = next(n for n in nodes if n["primary"] == primary["id"])
    assert by_id[replica["primary"]]["port"] == primary["port"]
    wait_for(lambda: get(timeout=60).headers.get("X-Cache") == "HIT", 60)

    with RequestLoop(max_requests=2000, max_seconds=120, pause=0.1) as loop:
        time.sleep(1)
        in_container("cachestack-cache", "systemctl", "stop", f"valkey-server@{primary['port']}")
        stopped = time.monotonic()
        promoted = wait_for(
            lambda: redis_cli(replica["port"], "ROLE").split()[0] == "master",
            FAILOVER_S + 5,
            interval=0.2,
        )
        took = time.monotonic() - stopped
        # The page keeps being served while the app's client finds the new primary.
        time.sleep(5)
    print(f"failover of {primary['port']} to {replica['port']}: {took:.1f} s; {loop.summary()}")
    assert promoted and took <= FAILOVER_S, took
    assert loop.served > 0 and loop.failures == [], (loop.failures[:5], loop.summary())
    assert cluster_info(replica["port"])["cluster_state"] == "ok"

    repair = ansible_playbook("site.yml", "-e", "cachestack_cache_shards=3")
    assert repair.returncode == 0, repair.tail(120)
    assert repair.changed_hosts().get("cachestack-cache"), repair.tail(120)
    assert primary["port"] in cache_units()
    back = next(n for n in cluster_nodes() if n["port"] == primary["port"])
    assert "slave" in back["flags"] and back["primary"] == replica["id"], back
    check_shape(THREE, 3)

    again = ansible_playbook("site.yml", "-e", "cachestack_cache_shards=3")
    assert again.returncode == 0, again.tail(120)
    assert again.changed_hosts() == {}, again.tail(200)


def test_three_to_two_shards_online(first_deploy: PlaybookRun) -> None:
    run, loop = reshape(2)
    assert run.returncode == 0, run.tail(120)
    print(f"3 -> 2 shards: {run.seconds:.0f} s; {loop.summary()}")
    assert loop.served > 0 and loop.failures == [], (loop.failures[:5], loop.summary())
    two = ["6379", "6380", "6385", "6386"]
    check_shape(two, 2)
    held = sorted(primaries().values())
    assert held == ["0-8191", "8192-16383"], held
    assert read_keys() == KEYS
    # The leaving nodes are stopped and their files gone.
    for port in ("6391", "6392"):
        gone = in_container(
            "cachestack-cache", "test", "-e", f"/etc/valkey/node-{port}.conf", check=False
        )
        assert gone.returncode != 0, port
    assert get().status == 200

    again = ansible_playbook("site.yml", "-e", "cachestack_cache_shards=2")
    assert again.returncode == 0, again.tail(120)
    assert again.changed_hosts() == {}, again.tail(200)


def test_no_secret_in_the_runs_output(first_deploy: PlaybookRun) -> None:
    token = secret("cache_auth_token")
    run = ansible_playbook("site.yml", "--check", "--diff", "-e", "cachestack_cache_shards=1")
    assert run.returncode == 0, run.tail(120)
    assert token not in run.output
    # The plan names the moves back to one shard and the nodes that would leave.
    assert "move slots" in run.output or "CLUSTER SETSLOT" in run.output, run.tail(200)


def test_the_cache_goes_back_to_the_default_shape(first_deploy: PlaybookRun) -> None:
    """Last, whatever happened above: the tests collected after these meet 1 x 1."""
    back = ansible_playbook("site.yml")
    assert back.returncode == 0, back.tail(120)
    assert cache_units() == ["6379", "6380"]
    assert cluster_info()["cluster_state"] == "ok"
