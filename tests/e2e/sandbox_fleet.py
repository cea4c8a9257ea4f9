"""The sandbox as a web fleet (issue 24): cachestack_web_count=2 puts HAProxy (cachestack-lb)
on 127.0.0.1:8080 in front of cachestack-web and cachestack-web-2; both serve, they share
the cache, a rollout under load fails no request and drains each host in turn, a stopped
web container is taken out and the next run brings it back. Collected last by
test_sandbox.py, on the sandbox its tests share (one module keeps every e2e test on one
xdist worker); the sandbox ends back at one web host.

The fleet is built once (its slow runs happen once). All traffic goes to 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.e2e.sandbox import (
    CONTAINERS,
    PAGE_URL,
    PlaybookRun,
    ansible_playbook,
    docker,
    existing_containers,
    fleet_containers,
    forget_page,
    get,
    haproxy_servers,
    in_container,
    wait_for,
)

WEBS = ("cachestack-web", "cachestack-web-2")
FLEET = ("-e", "cachestack_web_count=2")
# A change that restarts gunicorn (its unit's TimeoutStopSec) and nginx (its sandbox drop-in
# goes) on every web host: without the drain each restart refuses the requests sent meanwhile.
ROLLOUT = ("-e", "web_app_gunicorn_graceful_timeout=31", "-e", "web_nginx_systemd_hardening=false")


@dataclass
class Answer:
    at: float
    status: int  # 0: no answer (refused, reset, timed out)
    served_by: str


@dataclass
class RequestLoop:
    """Threads asking for the page on 127.0.0.1:8080 until stopped, bounded in count and
    time, each pausing between requests; every answer kept with its time and X-Served-By."""

    threads: int = 2
    pause: float = 0.03
    max_requests: int = 40000
    max_seconds: float = 900
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._run) for _thread in range(self.threads)]

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                if len(self.answers) >= self.max_requests:
                    return
            try:
                page = get(timeout=20)
                name = header(page.headers, "X-Served-By") or "?"
                answer = Answer(time.monotonic(), page.status, name)
            except OSError as error:
                answer = Answer(time.monotonic(), 0, repr(error))
            with self._lock:
                self.answers.append(answer)
            time.sleep(self.pause)

    def __enter__(self) -> RequestLoop:
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(60)

    def failures(self) -> list[str]:
        failed = [a for a in self.answers if a.status == 0 or a.status >= 500]
        return [f"{a.status} {a.served_by}" for a in failed]

    def per_host(self) -> Counter:
        return Counter(a.served_by for a in self.answers if a.status == 200)

    def between(self, start: float, end: float) -> list[Answer]:
        return sorted((a for a in self.answers if start <= a.at <= end), key=lambda a: a.at)


def header(headers: dict[str, str], name: str) -> str | None:
    """A response header by name, whatever its case (HAProxy sends header names in lower case)."""
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def handlers_changed(run: PlaybookRun, host: str) -> list[str]:
    """The handlers that reported changed on a host (PlaybookRun.changed_tasks reads tasks)."""
    changed, handler = [], ""
    for line in run.output.splitlines():
        if line.startswith("RUNNING HANDLER ["):
            handler = line[len("RUNNING HANDLER [") : line.rindex("]")]
        elif line.startswith("TASK ["):
            handler = ""
        elif handler and line.startswith(f"changed: [{host}]"):
            changed.append(handler)
    return changed


def served_by(requests: int = 40) -> Counter:
    pages = [get(timeout=60) for _request in range(requests)]
    assert [p.status for p in pages] == [200] * requests, [p.status for p in pages]
    return Counter(header(p.headers, "X-Served-By") for p in pages)


def page_on(host: str) -> tuple[int, str, str]:
    """The page from a web host's own nginx (inside its container): status, X-Cache, X-Served-By."""
    script = (
        "import urllib.request as u\n"
        "r = u.urlopen('http://127.0.0.1/', timeout=60)\n"
        "print(r.status, r.headers.get('X-Cache'), r.headers.get('X-Served-By'))\n"
    )
    status, cache, name = in_container(host, "python3", "-c", script).stdout.split()
    return int(status), cache, name


def logged_client(forwarded_for: str) -> tuple[str, str]:
    """Ask 127.0.0.1:8080 for the page with an X-Forwarded-For of the visitor's own; the
    web host that served it, and the client address its nginx logged for the request."""
    marker = f"realip-{time.time_ns()}"
    request = urllib.request.Request(  # noqa: S310 (loopback)
        f"{PAGE_URL}?{marker}", headers={"X-Forwarded-For": forwarded_for}
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (loopback)
        assert response.status == 200, response.status
        host = header(dict(response.headers), "X-Served-By") or "?"
    lines = in_container(host, "grep", "-F", marker, "/var/log/nginx/access.log").stdout
    (client,) = [line.split()[0] for line in lines.splitlines()]
    return host, client


def network_addresses() -> tuple[list[str], list[str]]:
    """The docker network's IPv4 gateway(s), and the balancer's address(es) on it."""
    network = json.loads(docker("network", "inspect", "cachestack"))[0]
    gateways = [c["Gateway"] for c in network["IPAM"]["Config"] if "." in c.get("Gateway", "")]
    balancer = [
        c["IPv4Address"].split("/")[0]
        for c in network["Containers"].values()
        if c["Name"] == "cachestack-lb"
    ]
    return gateways, balancer


def quiet_spells(answers: list[Answer], host: str, seconds: float) -> list[tuple[float, float]]:
    """Stretches of at least `seconds` during which the loop got answers, all from other hosts."""
    spells, start, last_other = [], None, None
    for answer in answers:
        if answer.served_by == host:
            if start is not None and last_other - start >= seconds:
                spells.append((start, last_other))
            start = None
        else:
            start = answer.at if start is None else start
            last_other = answer.at
    if start is not None and last_other - start >= seconds:
        spells.append((start, last_other))
    return spells


@pytest.fixture(scope="module")
def fleet(first_deploy: PlaybookRun) -> Iterator[PlaybookRun]:
    """Built once, by the first test that asks; back to one web host at the end of the
    module (test_sandbox.py, which collects these tests last) whatever happened."""
    run = ansible_playbook("site.yml", *FLEET)
    try:
        assert run.returncode == 0, run.tail(120)
        yield run
    finally:
        if fleet_containers():
            ansible_playbook("site.yml")


def test_two_web_hosts_serve_behind_the_balancer(fleet: PlaybookRun) -> None:
    assert fleet_containers() == ["cachestack-lb", "cachestack-web-2"]
    assert fleet.changed_tasks("localhost"), "the run made the containers"
    # The balancer publishes the page now; the web containers publish nothing.
    assert docker("port", "cachestack-lb").strip() == "80/tcp -> 127.0.0.1:8080"
    assert docker("port", "cachestack-web").strip() == ""
    wait_for(lambda: all(haproxy_servers()[h]["status"] == "UP" for h in WEBS), 60)
    counts = served_by(40)
    assert set(counts) == set(WEBS), counts
    assert min(counts.values()) >= 10, counts  # round robin: about 20 each

    # nginx believes the balancer's X-Forwarded-For alone (web_nginx_real_ip_from), to which
    # HAProxy appends the address it was reached from: the client is the docker gateway
    # 127.0.0.1:8080 arrives from, not what the visitor wrote nor the balancer itself.
    gateways, balancer = network_addresses()
    host, client = logged_client("203.0.113.9")
    assert [client] == gateways, (host, client, gateways, balancer)


def test_a_page_cached_through_one_host_is_a_hit_through_the_other(fleet: PlaybookRun) -> None:
    forget_page()
    first = page_on("cachestack-web")
    assert first == (200, "MISS", "cachestack-web"), first
    second = page_on("cachestack-web-2")
    assert second == (200, "HIT", "cachestack-web-2"), second


def test_a_rollout_under_load_fails_no_request_and_drains_each_host_in_turn(
    fleet: PlaybookRun,
) -> None:
    with RequestLoop() as loop:
        time.sleep(3)
        started = time.monotonic()
        rollout = ansible_playbook("site.yml", *FLEET, *ROLLOUT)
        ended = time.monotonic()
        time.sleep(3)
    assert rollout.returncode == 0, rollout.tail(120)
    for host in WEBS:
        restarted = " | ".join(handlers_changed(rollout, host))
        assert "web_app : Restart the app" in restarted, restarted
        assert "web_nginx : Restart nginx in its changed sandbox" in restarted, restarted

    during = loop.between(started, ended)
    rate = len(during) / (ended - started)
    assert rate >= 20, f"{len(during)} requests in {ended - started:.0f} s"
    assert loop.failures() == [], (loop.failures()[:20], loop.per_host())

    # Each host in turn (the inventory's order, one at a time): a spell with none of its
    # answers while the other served alone, then both again.
    spells = {host: quiet_spells(during, host, seconds=3) for host in WEBS}
    assert all(spells.values()), (spells, loop.per_host())
    first_out, second_out = spells["cachestack-web"][0], spells["cachestack-web-2"][-1]
    assert first_out[1] < second_out[0], spells
    after = Counter(a.served_by for a in loop.between(ended, ended + 60))
    assert set(after) == set(WEBS), after


def test_a_stopped_web_host_is_taken_out_and_the_next_run_brings_it_back(
    fleet: PlaybookRun,
) -> None:
    with RequestLoop() as loop:
        time.sleep(2)
        docker("stop", "cachestack-web-2")
        wait_for(lambda: haproxy_servers()["cachestack-web-2"]["status"] != "UP", 30)
        time.sleep(3)
        stopped = time.monotonic()
        time.sleep(5)
    assert loop.failures() == [], (loop.failures()[:20], loop.per_host())
    after_stop = Counter(a.served_by for a in loop.between(stopped, stopped + 60))
    assert set(after_stop) == {"cachestack-web"}, after_stop

    back = ansible_playbook("site.yml", *FLEET, *ROLLOUT)
    assert back.returncode == 0, back.tail(120)
    started = " | ".join(back.changed_tasks("localhost"))
    assert "sandbox_hosts : Start the systemd containers" in started, started
    assert back.changed_hosts(), back.tail(60)
    wait_for(lambda: all(haproxy_servers()[h]["status"] == "UP" for h in WEBS), 60)
    assert set(served_by(20)) == set(WEBS)

    rerun = ansible_playbook("site.yml", *FLEET, *ROLLOUT)
    assert rerun.returncode == 0, rerun.tail(120)
    assert rerun.changed_hosts() == {}, rerun.tail(200)


def test_back_to_one_web_host_the_sandbox_is_as_before(fleet: PlaybookRun) -> None:
    run = ansible_playbook("site.yml")
    assert run.returncode == 0, run.tail(120)
    assert fleet_containers() == []
    assert sorted(existing_containers()) == sorted(CONTAINERS)
    assert docker("port", "cachestack-web").strip() == "80/tcp -> 127.0.0.1:8080"
    assert set(served_by(10)) == {"cachestack-web"}


def test_a_count_of_zero_or_not_a_number_is_refused_first(fleet: PlaybookRun) -> None:
    before = docker("ps", "-a", "--format", "{{.Names}} {{.ID}}")
    for value in ("0", "1.5", "two", "21"):
        run = ansible_playbook("site.yml", "-e", f"cachestack_web_count={value}")
        assert run.returncode != 0, value
        assert "cachestack_web_count is" in run.output, run.tail()
        assert "Nothing was changed" in run.output
        assert run.changed_hosts() == {}, run.tail()
    run = ansible_playbook("site.yml", "-e", "cachestack_web_serial=0")
    assert run.returncode != 0
    assert "cachestack_web_serial is 0" in run.output, run.tail()
    assert docker("ps", "-a", "--format", "{{.Names}} {{.ID}}") == before
