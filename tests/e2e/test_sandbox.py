"""The sandbox end to end: site.yml from nothing, the page slow then fast, reruns
that change nothing, drift found by --check --diff and repaired by the next run, a
config change under load without a failed request, and bad input refused first.

All traffic goes to 127.0.0.1:8080, the only port the sandbox publishes."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.sandbox import (
    CONTAINERS,
    PAGE_URL,
    ROOT,
    SECRETS_DIR,
    PlaybookRun,
    ansible_playbook,
    container_id,
    existing_containers,
    forget_page,
    get,
    in_container,
    psql_argv,
    redis_cli,
    secret,
    wait_for,
)

NGINX_SITE = "/etc/nginx/sites-available/cachestack"
APP_CONFIG = "/etc/cachestack/app.ini"
APP_UNIT = "/etc/systemd/system/cachestack-app.service"
DRIFT_MARK = "# drifted by hand"


def test_plan_on_a_machine_with_nothing_creates_nothing(plan_from_nothing: PlaybookRun) -> None:
    assert plan_from_nothing.returncode == 0, plan_from_nothing.tail()
    assert plan_from_nothing.recap()["localhost"]["changed"] > 0, "the plan must show creations"
    assert existing_containers() == []


def test_site_builds_three_systemd_hosts_and_says_where_to_look(first_deploy: PlaybookRun) -> None:
    assert f"{PAGE_URL}" in first_deploy.output
    for container in CONTAINERS:
        state = in_container(container, "systemctl", "is-system-running", check=False)
        assert state.stdout.strip() == "running", (container, state.stdout, state.stderr)


def test_every_host_runs_the_platform_we_ship(first_deploy: PlaybookRun) -> None:
    # The OS molecule and the sandbox test is the OS the AWS instance gets (Debian 13),
    # with the servers ElastiCache and RDS default to: Valkey 8 in cluster mode over TLS
    # with AUTH (redis_cli speaks TLS and sends the token), and PostgreSQL 17.
    for container in CONTAINERS:
        release = in_container(container, "cat", "/etc/os-release").stdout
        assert 'VERSION_ID="13"' in release and "ID=debian" in release, (container, release)
    server = redis_cli("6379", "INFO", "server")
    assert re.search(r"^valkey_version:8\.", server, re.MULTILINE), server
    assert re.search(r"^server_mode:cluster", server, re.MULTILINE), server
    assert "cluster_state:ok" in redis_cli("6379", "CLUSTER", "INFO")
    version = in_container("cachestack-db", *psql_argv("SHOW server_version")).stdout
    assert version.startswith("17."), version


def test_the_deploy_checked_the_page_through_the_cache(first_deploy: PlaybookRun) -> None:
    # site.yml ends only after asking nginx for the page twice (a MISS, then a HIT) and
    # readiness whether the cache is ok: the first visitor finds the page cached.
    for task in (
        "Check that the page came through the cache",
        "Check that the cache answered the second time",
        "Check that readiness says the cache is ok",
    ):
        assert f"TASK [{task}]" in first_deploy.output, first_deploy.tail()
    first = get()
    assert (first.status, first.headers["X-Cache"]) == (200, "HIT"), first.body[:300]


def test_a_cold_visit_is_the_slow_query_then_the_cache_answers(first_deploy: PlaybookRun) -> None:
    forget_page()
    first = get(timeout=60)
    assert first.status == 200, first.body
    assert first.headers["X-Cache"] == "MISS"
    # pg_sleep times itself with the server's wall clock, this test with the host's
    # monotonic one: a slewing clock makes 5 s read as 4.99 (seen in CI). A HIT is < 50 ms.
    assert first.seconds >= 4.8, f"a MISS runs pg_sleep(5), took {first.seconds:.2f} s"
    assert "PostgreSQL 17" in first.body
    assert "cachestack-db" in first.body

    second = get()
    assert second.status == 200
    assert second.headers["X-Cache"] == "HIT"
    assert second.seconds < 0.050, f"a HIT took {second.seconds * 1000:.1f} ms"
    assert "PostgreSQL 17" in second.body


def test_readiness_names_each_dependency(first_deploy: PlaybookRun) -> None:
    ready = get(PAGE_URL + "healthz/ready")
    assert ready.status == 200
    assert json.loads(ready.body) == {"status": "ok", "postgresql": "ok", "redis": "ok"}


def test_health_is_published_and_metrics_are_not(first_deploy: PlaybookRun) -> None:
    assert get(PAGE_URL + "healthz/ready").status == 200
    assert get(PAGE_URL + "healthz/live").status == 200
    assert get(PAGE_URL + "metrics").status == 403


def test_the_app_connects_with_a_role_that_can_only_read_the_page(
    first_deploy: PlaybookRun,
) -> None:
    # app.ini names the app's own role; the owner's password is in no file on the web host.
    config = in_container("cachestack-web", "cat", APP_CONFIG).stdout
    assert re.search(r"^user = cachestack_app$", config, re.M), config
    owner_password = secret("db_password")
    found = subprocess.run(
        [
            "docker",
            "exec",
            "-i",
            "cachestack-web",
            "grep",
            "-rlF",
            "-f",
            "-",
            "/etc",
            "/opt",
            "/var/lib",
        ],
        input=owner_password + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert found.stdout == "", f"the owner's password is in {found.stdout.split()}"
    # The app's sessions are that role's, and it may not write.
    get()
    sessions = in_container(
        "cachestack-db",
        *psql_argv(
            "SELECT DISTINCT usename FROM pg_stat_activity"
            " WHERE application_name <> 'psql' AND usename IS NOT NULL"
        ),
    ).stdout.split()
    assert "cachestack_app" in sessions, sessions
    grants = in_container(
        "cachestack-db",
        *psql_argv(
            "SELECT has_function_privilege('cachestack_app', 'slow_version()', 'EXECUTE'),"
            " has_database_privilege('cachestack_app', 'cachestack', 'CREATE'),"
            " has_schema_privilege('cachestack_app', 'public', 'CREATE')"
        ),
    ).stdout.strip()
    assert grants == "t|f|f", grants


def test_a_second_run_changes_nothing(first_deploy: PlaybookRun) -> None:
    rerun = ansible_playbook("site.yml")
    assert rerun.returncode == 0, rerun.tail()
    assert set(rerun.recap()) >= {"localhost", *CONTAINERS}
    assert rerun.changed_hosts() == {}, rerun.tail(200)


def test_a_config_change_under_load_fails_no_request(first_deploy: PlaybookRun) -> None:
    failures: list[str] = []
    served = 0
    stop = threading.Event()

    def request_loop() -> None:
        nonlocal served
        while not stop.is_set():
            try:
                page = get(timeout=20)
                if page.status != 200:
                    failures.append(f"{page.status}: {page.body[:200]}")
                served += 1
            except OSError as error:
                failures.append(repr(error))
            time.sleep(0.02)

    loop = threading.Thread(target=request_loop)
    loop.start()
    try:
        change = ansible_playbook("site.yml", "-e", "web_app_cache_ttl=299")
    finally:
        stop.set()
        loop.join()
    assert change.returncode == 0, change.tail()
    assert change.changed_hosts().get("cachestack-web"), "the ttl change must reach the host"
    assert "ttl = 299" in in_container("cachestack-web", "cat", APP_CONFIG).stdout
    assert served > 50, f"only {served} requests ran during the change"
    assert failures == []


def make_drift() -> None:
    in_container("cachestack-web", "sh", "-c", f"echo '{DRIFT_MARK}' >> {NGINX_SITE}")
    in_container("cachestack-web", "sh", "-c", f"echo '{DRIFT_MARK}' >> {APP_UNIT}")
    in_container("cachestack-web", "systemctl", "daemon-reload")
    in_container("cachestack-web", "systemctl", "stop", "cachestack-app.service")
    in_container("cachestack-web", "chmod", "0644", APP_CONFIG)
    redis_cli("6379", "CONFIG", "SET", "maxmemory-policy", "noeviction")


def drift_still_there() -> dict[str, bool]:
    web = "cachestack-web"
    return {
        "nginx site": DRIFT_MARK in in_container(web, "cat", NGINX_SITE).stdout,
        "unit file": DRIFT_MARK in in_container(web, "cat", APP_UNIT).stdout,
        "service stopped": in_container(
            web, "systemctl", "is-active", "cachestack-app.service", check=False
        ).stdout.strip()
        != "active",
        "config mode": in_container(web, "stat", "-c", "%a", APP_CONFIG).stdout.strip() == "644",
        "redis setting": "noeviction" in redis_cli("6379", "CONFIG", "GET", "maxmemory-policy"),
    }


def test_drift_is_planned_by_check_diff_and_repaired_by_the_next_run(
    first_deploy: PlaybookRun,
) -> None:
    make_drift()
    assert all(drift_still_there().values()), drift_still_there()
    try:
        plan = ansible_playbook("site.yml", "--check", "--diff")
        assert plan.returncode == 0, plan.tail()
        assert all(drift_still_there().values()), f"check mode changed: {drift_still_there()}"
    finally:
        # Repaired whatever the plan showed, so later tests start from a working sandbox.
        repair = ansible_playbook("site.yml")

    web = " | ".join(plan.changed_tasks("cachestack-web"))
    cache = " | ".join(plan.changed_tasks("cachestack-cache"))
    assert "web_nginx : Write the cachestack site" in web, web
    assert "web_app : Write the systemd unit" in web, web
    assert "web_app : Start the app" in web, web
    assert "web_app : Write the app configuration" in web, web  # the mode; content is no_log
    assert "sandbox_cache : Report what a real run would do" in cache, cache
    assert f"-{DRIFT_MARK}" in plan.output, "the diff shows the hand-made lines going away"

    assert repair.returncode == 0, repair.tail()
    assert not any(drift_still_there().values()), drift_still_there()
    assert get(timeout=60).status == 200

    again = ansible_playbook("site.yml")
    assert again.returncode == 0, again.tail()
    assert again.changed_hosts() == {}, again.tail(200)


def test_the_plan_lists_a_new_migration_and_applies_nothing(
    first_deploy: PlaybookRun, tmp_path: Path
) -> None:
    # A new release's files: the app's migrations plus one the host has never seen.
    source = tmp_path / "migrations"
    shutil.copytree(ROOT / "roles" / "web_app" / "files" / "migrations", source)
    (source / "V999__planned_only.sql").write_text("CREATE TABLE planned_only (id int);\n")
    plan = ansible_playbook(
        "site.yml", "--check", "--diff", "-e", f"web_app_migrations_src={source}"
    )
    assert plan.returncode == 0, plan.tail()
    assert "pending: V999__planned_only.sql" in plan.output, plan.tail(120)
    listed = in_container("cachestack-web", "ls", "/opt/cachestack/migrations").stdout.split()
    assert "V999__planned_only.sql" not in listed
    made = "SELECT count(*) FROM pg_tables WHERE tablename = 'planned_only'"
    tables = in_container("cachestack-db", *psql_argv(made))
    assert tables.stdout.strip() == "0"


def redis_ping(token: str) -> str:
    """PING on the first Redis node with this token: PONG, or the error it gets."""
    ping = ("valkey-cli", "--tls", "--cacert", "/etc/valkey/tls/ca.crt", "-p", "6379", "PING")
    answer = in_container("cachestack-cache", *ping, check=False, env={"REDISCLI_AUTH": token})
    return (answer.stdout + answer.stderr).strip()


def db_login(password: str) -> str:
    """A login from the web host as the app's database user: OK, or libpq's error."""
    connect = (
        "import psycopg2; psycopg2.connect('host=cachestack-db dbname=cachestack "
        "user=cachestack sslmode=require connect_timeout=5').close(); print('OK')"
    )
    python = "/opt/cachestack/venv/bin/python"
    answer = in_container(
        "cachestack-web", python, "-c", connect, check=False, env={"PGPASSWORD": password}
    )
    return (answer.stdout + answer.stderr).strip()


# (secret file, the host that takes it, a login with it, its answers: accepted, refused,
# the web host's task that writes it: each secret has a file of its own beside app.ini, and
# a new owner password gives the app's role a new one)
ROTATIONS = [
    (
        *("cache_auth_token", "cachestack-cache", redis_ping, "PONG", "WRONGPASS"),
        "web_app : Write the cache's AUTH token",
    ),
    (
        *("db_password", "cachestack-db", db_login, "OK", "password authentication failed"),
        "web_app : Write the database password the app logs in with",
    ),
]


@pytest.mark.parametrize(
    ("name", "host", "login", "accepted", "refused", "web_task"),
    ROTATIONS,
    ids=[r[0] for r in ROTATIONS],
)
def test_a_new_secret_is_planned_then_applied(
    first_deploy: PlaybookRun,
    name: str,
    host: str,
    login,
    accepted: str,
    refused: str,
    web_task: str,
) -> None:
    # Rotating a sandbox secret: a new value in its file on the controller. The plan must
    # show the change, not fail talking to a server that still has the old one.
    secret_file = SECRETS_DIR / name
    old = secret_file.read_text().strip()
    new = secrets.token_hex(24)
    secret_file.write_text(new)
    try:
        plan = ansible_playbook("site.yml", "--check", "--diff")
        assert plan.returncode == 0, plan.tail()
        assert login(old) == accepted, "the plan changed the secret"
        # The database and cache plays run at once, so their task lines interleave.
        assert plan.recap()[host]["changed"] > 0, plan.tail()
        web = " | ".join(plan.changed_tasks("cachestack-web"))
        assert web_task in web, web
        # app.ini names the file, not the secret: it has nothing to change.
        assert "web_app : Write the app configuration" not in web, web
    except BaseException:
        secret_file.write_text(old)  # later tests need the secret the servers have
        raise

    run = ansible_playbook("site.yml")
    assert run.returncode == 0, run.tail()
    assert login(new) == accepted
    assert refused in login(old)
    # The page needs both: a MISS queries PostgreSQL, then a HIT comes from Redis.
    forget_page()
    wait_for(lambda: get(timeout=60).headers.get("X-Cache") == "HIT", 60)
    for output in (plan.output, run.output):
        assert new not in output
        assert old not in output


def test_a_new_database_port_is_planned_and_nothing_changes(first_deploy: PlaybookRun) -> None:
    # The plan must read the server on the port it runs on, not fail on the new one.
    plan = ansible_playbook("site.yml", "--check", "--diff", "-e", "sandbox_postgresql_port=5433")
    assert plan.returncode == 0, plan.tail()
    assert "-port = 5432" in plan.output and "+port = 5433" in plan.output, plan.tail(200)
    assert in_container("cachestack-db", *psql_argv("SHOW port")).stdout.strip() == "5432"
    assert get().status == 200


def test_a_site_nginx_refuses_fails_the_plan_as_it_fails_the_run(first_deploy: PlaybookRun) -> None:
    # Well-formed, but nginx refuses it: busy buffers must stay below all proxy_buffers
    # (8 8k) minus one. Only nginx -t knows; the plan must say so too, not show a clean diff.
    refused = ("-e", "web_nginx_proxy_busy_buffers_size=128k")
    site_before = in_container("cachestack-web", "cat", NGINX_SITE).stdout
    plan = ansible_playbook("site.yml", "--check", "--diff", *refused)
    assert plan.returncode != 0, plan.tail()
    assert '"proxy_busy_buffers_size" must be less than' in plan.output, plan.tail()
    run = ansible_playbook("site.yml", *refused)
    assert run.returncode != 0, run.tail()
    assert '"proxy_busy_buffers_size" must be less than' in run.output, run.tail()
    assert in_container("cachestack-web", "cat", NGINX_SITE).stdout == site_before
    assert (
        in_container("cachestack-web", "sh", "-c", "ls /tmp/*.nginx-site", check=False).returncode
        != 0
    )
    assert get().status == 200


def test_cache_engine_redis_swaps_the_server_in_place_and_back(first_deploy: PlaybookRun) -> None:
    # Users on Redis OSS set cachestack_cache_engine: redis; the sandbox then runs Debian's
    # redis-server on the same ports (the Valkey nodes stopped), and back again.
    try:
        run = ansible_playbook("site.yml", "-e", "cachestack_cache_engine=redis")
        assert run.returncode == 0, run.tail()
        units = in_container(
            "cachestack-cache", "systemctl", "list-units", "--plain", "--no-legend", "*-server@*"
        ).stdout
        assert sorted(line.split()[0] for line in units.splitlines()) == [
            "redis-server@6379.service",
            "redis-server@6380.service",
        ], units
        token = {"REDISCLI_AUTH": secret("cache_auth_token")}
        cli = ("redis-cli", "--tls", "--cacert", "/etc/redis/tls/ca.crt", "-h", "127.0.0.1")
        server = in_container("cachestack-cache", *cli, "INFO", "server", env=token).stdout
        assert re.search(r"^redis_version:8\.", server, re.MULTILINE), server
        assert "valkey_version" not in server, server
        wait_for(lambda: get(timeout=60).headers.get("X-Cache") in ("MISS", "HIT"), 60)
        assert wait_for(lambda: get(timeout=60).headers.get("X-Cache") == "HIT", 60)
    finally:
        back = ansible_playbook("site.yml")
    assert back.returncode == 0, back.tail()
    assert re.search(r"^valkey_version:8\.", redis_cli("6379", "INFO", "server"), re.MULTILINE)
    assert wait_for(lambda: get(timeout=60).headers.get("X-Cache") == "HIT", 60)


def redis_run_ids() -> list[str]:
    """Each Redis node's run_id: a new one means the node restarted."""
    ports = ("6379", "6380")
    return [re.search(r"run_id:(\w+)", redis_cli(p, "INFO", "server"))[1] for p in ports]


def test_a_new_redis_memory_limit_is_set_live_and_the_cache_keeps_its_data(
    first_deploy: PlaybookRun,
) -> None:
    wait_for(lambda: get(timeout=60).headers.get("X-Cache") == "HIT", 60)
    before = redis_run_ids()
    try:
        run = ansible_playbook("site.yml", "-e", "sandbox_cache_maxmemory_mb=200")
        assert run.returncode == 0, run.tail()
        for port in ("6379", "6380"):
            assert redis_cli(port, "CONFIG", "GET", "maxmemory").split() == [
                "maxmemory",
                str(200 * 1048576),
            ]
        assert redis_run_ids() == before, "a node restarted (and lost the cache)"
        assert get().headers["X-Cache"] == "HIT"
    finally:
        back = ansible_playbook("site.yml")
    assert back.returncode == 0, back.tail()
    assert redis_cli("6379", "CONFIG", "GET", "maxmemory").split()[1] == str(256 * 1048576)


def test_bad_input_stops_before_anything_changes(first_deploy: PlaybookRun) -> None:
    bad_port = ansible_playbook("site.yml", "-e", "sandbox_hosts_published_port=not-a-port")
    assert bad_port.returncode != 0
    assert "sandbox_hosts_published_port" in bad_port.output
    assert bad_port.changed_hosts() == {}

    no_image = ansible_playbook("site.yml", "-e", "sandbox_hosts_image=cachestack-no-such-image:1")
    assert no_image.returncode != 0
    assert (
        "sandbox_hosts_image: cachestack-no-such-image:1 is not on this machine" in no_image.output
    )
    assert no_image.changed_hosts() == {}

    bad_ttl = ansible_playbook("site.yml", "-e", "web_app_cache_ttl=soon")
    assert bad_ttl.returncode != 0
    assert "web_app_cache_ttl" in bad_ttl.output
    assert bad_ttl.changed_hosts() == {}
    assert get().status == 200


def test_configure_alone_with_no_web_host_fails_saying_which_inventory(
    first_deploy: PlaybookRun,
) -> None:
    # The sandbox's containers join the group web only in site.yml's provisioning.
    alone = ansible_playbook("playbooks/configure.yml")
    assert alone.returncode != 0, alone.tail()
    said = " ".join(alone.output.split())
    assert "No host in the group web: provisioning made no web host" in said, alone.tail()
    assert "-i inventory/aws" in said and "run site.yml" in said, alone.tail()
    assert alone.changed_hosts() == {}
    # A plan of an environment with no web host yet has nothing to configure: not an error.
    plan = ansible_playbook("playbooks/configure.yml", "--check")
    assert plan.returncode == 0, plan.tail()


def test_a_port_held_by_another_program_stops_before_anything_changes(
    first_deploy: PlaybookRun,
) -> None:
    # Moving the page to another port recreates the web container: Docker would remove
    # the running one, then fail to publish the new one on a port another program holds,
    # or on an address this machine does not have (192.0.2.1 is TEST-NET-1, never local).
    web_before = container_id("cachestack-web")
    with socket.socket() as other_program:
        other_program.bind(("127.0.0.1", 0))
        other_program.listen()
        taken = other_program.getsockname()[1]
        moved = ansible_playbook("site.yml", "-e", f"sandbox_hosts_published_port={taken}")
    elsewhere = ansible_playbook("site.yml", "-e", "sandbox_hosts_published_address=192.0.2.1")
    for run, where in ((moved, f"127.0.0.1:{taken}"), (elsewhere, "192.0.2.1:8080")):
        assert run.returncode != 0
        said = " ".join(run.output.split())
        assert f"sandbox_hosts_published_port: {where} cannot be published" in said, run.tail()
        assert run.changed_hosts() == {}
    assert container_id("cachestack-web") == web_before
    assert get().status == 200


# The fault, security, cache-reshape and web-fleet checks run after the tests above, on
# the same sandbox. They live in their own files but are collected here, in this order:
# one module is what keeps them on one xdist worker (--dist loadfile) and after the
# deploy tests.
# pylint: disable=wrong-import-position,unused-import
# isort: off
from tests.e2e.sandbox_faults import (  # noqa: E402, F401
    test_gunicorn_master_killed_comes_back_within_10_s,
    test_redis_stopped_pages_bypass_then_hit_again,
    test_redis_frozen_pages_still_served_within_the_timeout,
    test_postgresql_stopped_cached_page_served_and_unready,
    test_a_deploy_whose_cache_does_not_work_fails_naming_the_cache,
    test_container_restart_comes_back_by_itself,
    test_the_plan_with_a_stopped_container_shows_its_start,
    test_the_web_host_on_a_new_address_still_reaches_postgresql,
    test_a_change_from_a_run_that_failed_is_applied_by_the_next,
    test_an_nginx_change_whose_reload_failed_is_applied_by_the_next_run,
    test_repeated_stampedes_through_nginx_all_answer_in_time,
    test_a_changed_worker_class_restarts_the_app,
    test_site_killed_mid_run_then_the_next_run_converges,
    test_a_token_from_a_killed_run_reaches_the_nodes_on_the_next,
)
from tests.e2e.sandbox_security import (  # noqa: E402, F401
    test_app_unit_is_hardened,
    test_no_secret_in_verbose_output_journal_or_nginx_logs,
    test_secrets_and_app_config_are_not_world_readable,
    test_redis_refuses_plaintext_and_clients_without_the_token,
    test_postgresql_refuses_clients_other_than_the_web_host,
    test_a_certificate_near_its_expiry_is_renewed_and_served,
    test_only_127_0_0_1_8080_is_published,
)
from tests.e2e.sandbox_reshape import (  # noqa: E402, F401
    test_one_to_three_shards_online,
    test_three_shards_speak_tls_with_auth_only,
    test_a_stopped_primary_fails_over_and_the_next_run_repairs_it,
    test_three_to_two_shards_online,
    test_no_secret_in_the_runs_output,
    test_the_cache_goes_back_to_the_default_shape,
)
from tests.e2e.sandbox_fleet import (  # noqa: E402, F401
    fleet,
    test_two_web_hosts_serve_behind_the_balancer,
    test_a_page_cached_through_one_host_is_a_hit_through_the_other,
    test_a_rollout_under_load_fails_no_request_and_drains_each_host_in_turn,
    test_a_stopped_web_host_is_taken_out_and_the_next_run_brings_it_back,
    test_back_to_one_web_host_the_sandbox_is_as_before,
    test_a_count_of_zero_or_not_a_number_is_refused_first,
)
# isort: on
