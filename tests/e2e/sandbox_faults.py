"""What the deployed sandbox survives, with nothing restarted by hand: the gunicorn
master killed, Redis stopped or frozen, PostgreSQL stopped, any container restarted,
the web host on a new address, and site.yml killed mid-run. Runs after test_sandbox.py
on the same sandbox."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.sandbox import (
    CACHE_KEY,
    CONTAINERS,
    PAGE_URL,
    ROOT,
    SECRETS_DIR,
    VENV_BIN,
    PlaybookRun,
    ansible_playbook,
    docker,
    forget_page,
    get,
    in_container,
    psql_argv,
    redis_cli,
    secret,
    wait_for,
)


def redis_nodes() -> list[str]:
    # Named, not globbed: a glob matches only loaded units, and a stopped
    # template instance is not loaded any more.
    listed = in_container(
        "cachestack-cache", "systemctl", "list-units", "--plain", "--no-legend", "valkey-server@*"
    )
    nodes = [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]
    assert len(nodes) >= 2, listed.stdout
    return nodes


def main_pid() -> str:
    shown = in_container(
        "cachestack-web", "systemctl", "show", "-P", "MainPID", "cachestack-app.service"
    )
    return shown.stdout.strip()


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, ...), or None."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # The command name in parentheses may hold spaces: split after it.
            return stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_tree(root: int) -> list[int]:
    """root and every process below it, parents first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        fields = proc_stat(int(entry)) if entry.isdigit() else None
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry))
    tree, queue = [], [root]
    while queue:
        pid = queue.pop(0)
        tree.append(pid)
        queue.extend(children.get(pid, []))
    return tree


def ready() -> bool:
    return get(PAGE_URL + "healthz/ready", timeout=5).status == 200


def warm_cache(lasting_s: int = 60) -> None:
    """The page cached for at least ``lasting_s`` more seconds: an entry near the end of its
    TTL is dropped and filled again, so it cannot expire in the middle of a test."""
    wait_for(ready, 60)
    # Refreshed with room to spare, so the check after the warm-up cannot lose a race. The
    # value says how long it stays fresh (Valkey keeps it stale_ttl longer: PTTL cannot).
    cached = redis_cli("6379", "GET", CACHE_KEY).strip()
    if not cached or json.loads(cached)["fresh_until"] - time.time() < 2 * lasting_s:
        forget_page()
    get(timeout=60)
    assert get().headers["X-Cache"] == "HIT"
    # Also proves CACHE_KEY is the app's key, so the check above is not idle.
    assert int(redis_cli("6379", "PTTL", CACHE_KEY)) >= lasting_s * 1000


def test_gunicorn_master_killed_comes_back_within_10_s(first_deploy: PlaybookRun) -> None:
    warm_cache()
    before = main_pid()
    in_container(
        "cachestack-web",
        "systemctl",
        "kill",
        "-s",
        "KILL",
        "--kill-whom=main",
        "cachestack-app.service",
    )
    killed_at = time.monotonic()
    # The old master's workers may answer a last request before systemd stops them: wait
    # for the new master first, then for a page, all within the same 10 s.
    wait_for(lambda: main_pid() not in ("0", before), 10, interval=0.2)
    left = 10 - (time.monotonic() - killed_at)
    page = wait_for(lambda: (p := get(timeout=5)).status == 200 and p, left, interval=0.2)
    assert time.monotonic() - killed_at <= 10
    assert page.headers["X-Cache"] == "HIT"


def test_redis_stopped_pages_bypass_then_hit_again(first_deploy: PlaybookRun) -> None:
    warm_cache()
    nodes = redis_nodes()
    in_container("cachestack-cache", "systemctl", "stop", *nodes)
    try:
        page = get(timeout=30)
        assert page.status == 200
        assert page.headers["X-Cache"] == "BYPASS"
        assert get(PAGE_URL + "healthz/ready").status == 200, "Redis down is degraded, not unready"
    finally:
        in_container("cachestack-cache", "systemctl", "start", *nodes)
    get(timeout=30)  # refills the cache once the breaker lets Redis back in
    wait_for(lambda: get(timeout=30).headers.get("X-Cache") == "HIT", 60, interval=1)


def test_redis_frozen_pages_still_served_within_the_timeout(first_deploy: PlaybookRun) -> None:
    warm_cache()
    nodes = redis_nodes()
    in_container("cachestack-cache", "systemctl", "kill", "-s", "STOP", *nodes)
    try:
        page = get(timeout=30)
        assert page.status == 200
        assert page.headers["X-Cache"] == "BYPASS"
        # The slow query itself takes 5 s; a frozen Redis may add only its short timeouts.
        assert page.seconds < 7, f"{page.seconds:.2f} s"
    finally:
        in_container("cachestack-cache", "systemctl", "kill", "-s", "CONT", *nodes)
    wait_for(lambda: get(timeout=30).headers.get("X-Cache") == "HIT", 60, interval=1)


def test_postgresql_stopped_cached_page_served_and_unready(first_deploy: PlaybookRun) -> None:
    warm_cache()
    in_container("cachestack-db", "systemctl", "stop", "postgresql.service")
    try:
        # Debian's postgresql.service returns while the cluster unit is still stopping.
        wait_for(lambda: get(PAGE_URL + "healthz/ready", timeout=5).status == 503, 20)
        page = get()
        assert page.status == 200
        assert page.headers["X-Cache"] == "HIT"
    finally:
        in_container("cachestack-db", "systemctl", "start", "postgresql.service")
    wait_for(ready, 30)


def test_a_deploy_whose_cache_does_not_work_fails_naming_the_cache(
    first_deploy: PlaybookRun,
) -> None:
    """Only the web host's contract gets a wrong AUTH token (the Redis nodes take theirs
    from the sandbox's secret file). The page is still served, from PostgreSQL (BYPASS),
    and readiness stays 200, so only the check after configure can catch it: the run must
    fail and name the cache. The next plain run repairs it."""
    warm_cache()
    wrong = "wrong" + secrets.token_hex(16)
    try:
        broken = ansible_playbook("site.yml", "-e", f"cachestack_cache_auth_token={wrong}")
        said = " ".join(broken.output.split())
        assert broken.returncode != 0, broken.tail()
        assert broken.recap()["cachestack-web"]["failed"] == 1, broken.tail()
        assert "the cache: X-Cache was BYPASS" in said, broken.tail()
        assert "invalid username-password pair" in said, broken.tail()  # readiness's reason
        assert wrong not in broken.output
        # The nodes kept their token: the wrong one reached the app only.
        assert redis_ping(secret("cache_auth_token")) == "PONG"
        page = get(timeout=60)
        assert (page.status, page.headers["X-Cache"]) == (200, "BYPASS")
    finally:
        # Whatever happened above, the tests after this one meet a working cache.
        repaired = ansible_playbook("site.yml")
    assert repaired.returncode == 0, repaired.tail()
    assert get().headers["X-Cache"] == "HIT"


@pytest.mark.parametrize("container", CONTAINERS)
def test_container_restart_comes_back_by_itself(first_deploy: PlaybookRun, container: str) -> None:
    warm_cache()
    subprocess.run(["docker", "restart", container], check=True, capture_output=True, timeout=120)
    wait_for(ready, 90, interval=1)
    # Served, and through the cache again (not BYPASS), with nothing restarted by hand.
    wait_for(lambda: get(timeout=30).headers.get("X-Cache") in ("HIT", "MISS"), 60, interval=1)
    if container == "cachestack-cache":
        # No persistence, like ElastiCache: the cluster comes back empty but whole.
        wait_for(lambda: get(timeout=30).headers.get("X-Cache") == "HIT", 60, interval=1)


def test_the_plan_with_a_stopped_container_shows_its_start(first_deploy: PlaybookRun) -> None:
    docker("stop", "cachestack-db")
    try:
        plan = ansible_playbook("site.yml", "--check", "--diff")
    finally:
        docker("start", "cachestack-db")
    assert "cachestack.aws.sandbox_hosts : Start the systemd containers" in plan.changed_tasks(
        "localhost"
    ), plan.tail()
    # The web host is planned too, up to what needs the database: its migrations say
    # why they cannot be planned (a template error hidden by no_log said nothing).
    recap = plan.recap()
    assert recap["localhost"]["failed"] == 0, plan.tail()
    assert recap["cachestack-web"]["failed"] == 1, plan.tail()
    assert "unable to connect to database" in plan.output, plan.tail()
    wait_for(ready, 90, interval=1)


def network_address(container: str) -> str:
    networks = json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", container))
    return networks["cachestack"]["IPAddress"]


def test_the_web_host_on_a_new_address_still_reaches_postgresql(first_deploy: PlaybookRun) -> None:
    """As after a reboot, when Docker deals the addresses out in a new order: other
    containers take the web host's address, and the web host gets another one."""
    old_address = network_address("cachestack-web")
    docker("network", "disconnect", "cachestack", "cachestack-web")
    holders: list[str] = []
    try:
        # Docker hands out the lowest free address: fill up to the web host's old one.
        while len(holders) < 8 and old_address not in map(network_address, holders):
            holders.append(f"cachestack-address-holder-{len(holders)}")
            options = f"--rm --name {holders[-1]} --network cachestack --entrypoint sleep"
            docker("run", "-d", *options.split(), "cachestack-base:latest", "300")
    finally:
        docker("network", "connect", "cachestack", "cachestack-web")
        subprocess.run(["docker", "rm", "-f", *holders], capture_output=True, check=False)
    assert network_address("cachestack-web") != old_address
    wait_for(ready, 60, interval=1)
    # A miss runs the query on a connection opened from the new address.
    forget_page()
    page = get(timeout=60)
    assert (page.status, page.headers["X-Cache"]) == (200, "MISS"), page.body[:300]


def migration_lock_key() -> int:
    """The advisory lock postgresql_migrate holds while it migrates the app's database."""
    # The module imports its module_utils by collection name: .collections holds the link.
    collections = str(ROOT / ".collections")
    if collections not in sys.path:
        sys.path.insert(0, collections)
    from ansible_collections.cachestack.aws.plugins.modules import postgresql_migrate

    return int(postgresql_migrate.lock_key("public", "cachestack_schema_history"))


def test_a_change_from_a_run_that_failed_is_applied_by_the_next(first_deploy: PlaybookRun) -> None:
    """The run writes app.ini with the new TTL, then fails waiting for the migration lock
    (before its handlers). The next run finds app.ini as it wants it, and must still
    restart the app, or the new TTL would never reach it."""
    ttl = ["-e", "web_app_cache_ttl=30"]
    lock = f"SELECT pg_advisory_lock({migration_lock_key()}), pg_sleep(300)"
    holder = subprocess.Popen(
        ["docker", "exec", "cachestack-db", *psql_argv(lock)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        wait_for(lambda: in_container("cachestack-db", *psql_argv(held)).stdout.strip() != "0", 20)
        failed = ansible_playbook("site.yml", *ttl, "-e", "web_app_migrations_lock_timeout=1")
        assert failed.returncode != 0, failed.tail()
        assert "web_app : Report why the migrations failed" in failed.output, failed.tail()
    finally:
        holder.kill()
        release = (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE 'SELECT pg_advisory_lock%' AND pid <> pg_backend_pid()"
        )
        in_container("cachestack-db", *psql_argv(release))
    try:
        rerun = ansible_playbook("site.yml", *ttl)
        assert rerun.returncode == 0, rerun.tail()
        wait_for(ready, 60)
        forget_page()
        assert get(timeout=60).headers["X-Cache"] == "MISS"
        # The value is fresh for the new TTL (up to 10% less: jitter); Valkey keeps it
        # stale_ttl longer (twice the TTL by default), so PTTL says 30 + 60 s at most.
        entry = json.loads(redis_cli("6379", "GET", CACHE_KEY))
        assert 26.9 <= entry["fresh_until"] - entry["cached_at"] <= 30.0, entry
        assert 30_000 < int(redis_cli("6379", "PTTL", CACHE_KEY)) <= 90_000
    finally:
        back = ansible_playbook("site.yml")
        assert back.returncode == 0, back.tail()
        wait_for(ready, 60)
        # The entry cached with the short TTL goes, so later tests meet the usual one.
        forget_page()


def post_status(size: int) -> int:
    """Status of a POST of `size` bytes to the page: 413 when nginx refuses the body, 405
    when it passed the body on to the app (which takes GET and HEAD only)."""
    request = urllib.request.Request(PAGE_URL, data=b"x" * size, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_an_nginx_change_whose_reload_failed_is_applied_by_the_next_run(
    first_deploy: PlaybookRun,
) -> None:
    """A new site lands, then the reload's check of the whole tree fails (Debian's default
    site claims default_server too). Once that is fixed by hand, the next run finds the
    site as it wants it, and must still reload nginx."""
    bigger = [
        "-e",
        "web_nginx_client_max_body_size=3m",
        "-e",
        "web_nginx_remove_default_site=false",
    ]
    assert post_status(2_000_000) == 413  # the default 1m
    default_site = "/etc/nginx/sites-enabled/default"
    in_container("cachestack-web", "ln", "-s", "/etc/nginx/sites-available/default", default_site)
    try:
        failed = ansible_playbook("site.yml", *bigger)
        in_container("cachestack-web", "rm", "-f", default_site)
        assert failed.returncode != 0, failed.tail()
        assert "web_nginx : Check the whole nginx configuration" in failed.output, failed.tail()
        assert post_status(2_000_000) == 413  # not reloaded

        rerun = ansible_playbook("site.yml", *bigger)
        assert rerun.returncode == 0, rerun.tail()
        assert post_status(2_000_000) == 405
    finally:
        in_container("cachestack-web", "rm", "-f", default_site)
        back = ansible_playbook("site.yml")
        assert back.returncode == 0, back.tail()
    assert post_status(2_000_000) == 413


def cold_stampede(requests: int = 50) -> list[tuple[int, float]]:
    """``requests`` released at once through nginx on an empty cache: (status, seconds)."""
    forget_page()
    barrier = threading.Barrier(requests)

    def one(_request: int) -> tuple[int, float]:
        barrier.wait()
        start = time.monotonic()
        return get(timeout=90).status, time.monotonic() - start

    with ThreadPoolExecutor(max_workers=requests) as pool:
        return list(pool.map(one, range(requests)))


def test_repeated_stampedes_through_nginx_all_answer_in_time(
    first_deploy: PlaybookRun,
) -> None:
    # nginx keeps its upstream connections to gunicorn open between requests. A worker
    # that counted those idle connections against a cap stopped accepting, and requests
    # beyond them waited until nginx gave up (504 after 60 s): here, in 2 of 8 stampedes.
    for _stampede in range(3):
        answers = cold_stampede()
        assert [status for status, _seconds in answers] == [200] * 50
        slowest = max(seconds for _status, seconds in answers)
        assert slowest < 20, f"slowest answer {slowest:.1f} s: requests waited for a worker"


APP_WORKER_CLASS = "/opt/cachestack/app/gthread_fair.py"


def test_after_a_reload_only_new_workers_answer(first_deploy: PlaybookRun) -> None:
    # What answers once the app's handlers are done must have the new configuration: the
    # deploy check comes right after them. `systemctl reload` returns while the old
    # workers, with the old app.ini, still answer (for about 0.6 s here).
    try:
        run = ansible_playbook("tests/e2e/reload.yml", "-e", "web_app_cache_ttl=299")
        assert run.returncode == 0, run.tail()
        assert "Reload the app gracefully" in run.output, run.tail()
        (shown,) = [line for line in run.output.splitlines() if "noted before the reload:" in line]
        noted, left = shown.split("noted before the reload:")[1].split("; still running:")
        assert len(noted.split()) >= 2, shown
        assert left.strip(" \"'") == "", shown
    finally:
        restored = ansible_playbook("site.yml")
        assert restored.returncode == 0, restored.tail()


def test_a_changed_worker_class_restarts_the_app(first_deploy: PlaybookRun) -> None:
    # gunicorn's master imports the worker class once: a graceful reload would keep the
    # old one, so the run must restart the service.
    warm_cache()
    before = main_pid()
    in_container("cachestack-web", "sh", "-c", f"echo '# edited by hand' >> {APP_WORKER_CLASS}")
    run = ansible_playbook("site.yml")
    assert run.returncode == 0, run.tail()
    assert "edited by hand" not in in_container("cachestack-web", "cat", APP_WORKER_CLASS).stdout
    assert main_pid() not in ("0", before), "restarted, not reloaded (HUP keeps the master)"
    page = wait_for(lambda: (p := get(timeout=5)).status == 200 and p, 30, interval=0.2)
    assert page.headers["X-Cache"] == "HIT"


def kill_site_run(marker: str, *args: str, delay: float = 0) -> None:
    """Run site.yml and kill it, whole, ``delay`` seconds after a line with ``marker``."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    with subprocess.Popen(
        [str(VENV_BIN / "ansible-playbook"), "site.yml", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as run:
        assert run.stdout is not None
        seen = []
        for line in run.stdout:
            seen.append(line)
            if marker in line:
                break
        else:
            raise AssertionError(f"the run ended before {marker!r}: {''.join(seen[-40:])}")
        time.sleep(delay)
        # The whole run dies at once, as in a crash or a cancelled CI job: Ansible's
        # workers run in sessions of their own, so killing the process group alone
        # would leave them running (and, under Mitogen, waiting for ever).
        # Stop the tree first, so nothing forks once it has been listed.
        tree: list[int] = []
        while new := [pid for pid in process_tree(run.pid) if pid not in tree]:
            for pid in new:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            tree += new
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        run.wait(timeout=30)
    assert run.returncode == -signal.SIGKILL
    time.sleep(1)
    left = [pid for pid in tree if (proc_stat(pid) or ["Z"])[0] != "Z"]
    assert not left, f"processes of the killed run still there: {left}"


def test_site_killed_mid_run_then_the_next_run_converges(first_deploy: PlaybookRun) -> None:
    # A run with a config change, killed once the web host's tasks have begun.
    kill_site_run("cachestack.aws.web_app :", "-e", "web_app_cache_ttl=298", delay=2)
    converge = ansible_playbook("site.yml")
    assert converge.returncode == 0, converge.tail()
    wait_for(ready, 30)
    again = ansible_playbook("site.yml")
    assert again.changed_hosts() == {}, again.tail(200)


def redis_ping(token: str) -> str:
    """PING one cache node with a token: PONG, or the node's refusal."""
    return in_container(
        "cachestack-cache",
        *("valkey-cli", "--tls", "--cacert", "/etc/valkey/tls/ca.crt", "-h", "127.0.0.1"),
        *("-p", "6379", "PING"),
        env={"REDISCLI_AUTH": token},
    ).stdout.strip()


def test_a_token_from_a_killed_run_reaches_the_nodes_on_the_next(
    first_deploy: PlaybookRun,
) -> None:
    """A rotated token is written to the nodes' file, then the run dies before the handlers
    restart the nodes. The next run finds the file as it wants it, and must still restart
    them, or they would refuse the new token (the app's, and the role's own valkey-cli)."""
    token_file = SECRETS_DIR / "cache_auth_token"
    old = secret("cache_auth_token")
    new = secrets.token_hex(24)  # letters and digits, as the sandbox makes them
    token_file.write_text(new)  # the sandbox reads its token here on every run
    try:
        kill_site_run("cachestack.aws.sandbox_cache : Start and enable every node")
        assert redis_ping(old) == "PONG", "the killed run restarted the nodes after all"

        plan = ansible_playbook("site.yml", "--check", "--diff")
        assert plan.returncode == 0, plan.tail()
        # Under the free strategy task headers interleave: look for the note's message.
        assert "/etc/valkey/.cachestack-restart-pending is there" in plan.output, plan.tail()
        assert plan.recap()["cachestack-cache"]["changed"] >= 1, plan.tail()
        assert redis_ping(old) == "PONG", "the plan restarted the nodes"

        converge = ansible_playbook("site.yml")
        assert converge.returncode == 0, converge.tail()
    except BaseException:
        # Nodes and file agree again, so the tests after this one meet a working cache.
        token_file.write_text(old)
        ansible_playbook("site.yml")
        raise
    assert redis_ping(new) == "PONG"
    assert "PONG" not in redis_ping(old)
    wait_for(ready, 60)
    assert get(timeout=60).headers["X-Cache"] in ("HIT", "MISS")  # not BYPASS
    again = ansible_playbook("site.yml")
    assert again.changed_hosts() == {}, again.tail(200)
