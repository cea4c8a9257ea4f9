"""In-process cost of a near-cache hit, layer by layer, with no server and no network.

    .venv/bin/python -m bench.app.micro [--requests 100000] [--repeat 5]

Calls, as gunicorn would, the floor's WSGI app (``bench/app/floor.py``) and ours answering
``HIT-LOCAL`` (the near cache filled by hand: no Redis or PostgreSQL is called; nothing
listens on the ports the INI names), each ``--requests`` times, the best of ``--repeat``;
then each of the prometheus_client writes a near hit makes, in multiprocess mode as under
gunicorn, and gunicorn's own handling of each app's response headers (its
``Response.start_response`` and the header lines it sends). Microseconds per request. The
gap between the two apps under gunicorn (``python -m bench.app``'s CPU per request) is
these figures and gunicorn's own per-request work, which is the same for both.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
APP_DIR = REPO / "roles" / "web_app" / "files"
VERSION = (
    "PostgreSQL 17.12 (Debian 17.12-0+deb13u1) on x86_64-pc-linux-gnu, compiled by gcc "
    "(Debian 14.2.0-19) 14.2.0, 64-bit"
)
INI = (
    "[postgresql]\nhost = 127.0.0.1\nport = 9\ndbname = bench\nuser = bench\npassword = x\n"
    "sslmode = disable\n\n[redis]\nhost = 127.0.0.1\nport = 9\n\n"
    "[cache]\nttl = 300\nlocal_ttl = 100000\nnamespace = micro\n"
)
ENVIRON = {"PATH_INFO": "/", "REQUEST_METHOD": "GET"}


def start_response(_status: str, _headers: list[tuple[str, str]], _exc_info: Any = None) -> None:
    return None


def best_us(call: Callable[[], Any], requests: int, repeat: int) -> float:
    return min(timeit.repeat(call, number=requests, repeat=repeat)) / requests * 1e6


def our_app(workdir: Path) -> Any:
    """Our app as create_app() builds it, its near cache holding a value for a day."""
    sys.path.insert(0, str(APP_DIR))
    from cachestack_app import create_app
    from cachestack_app.page import html
    from cachestack_app.service import Entry

    ini = workdir / "app.ini"
    ini.write_text(INI)
    ini.chmod(0o600)
    app = create_app(str(ini))
    now = time.time()
    entry = Entry(b"micro", html(VERSION), now, now + 86400, 0.01)
    app.service.near.put(app.service.key, entry, now)
    return app


def gunicorn_headers(headers: list[tuple[str, str]]) -> Callable[[], Any]:
    """gunicorn's work for one response's headers: its checks and the lines it sends."""
    from gunicorn.http.wsgi import Response

    class Request:
        version = (1, 1)
        method = "GET"

    class Config:
        is_ssl = False

    def once() -> Any:
        response = Response.__new__(Response)
        response.req, response.cfg, response.headers = Request, Config, []
        response.status, response.response_length = None, None
        response.chunked, response.upgrade = False, False
        response.start_response("200 OK", headers)
        lines = ("%s: %s\r\n" % pair for pair in response.headers)  # noqa: UP031 - as gunicorn
        return "".join(lines).encode("latin-1")

    return once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not 1 <= args.requests <= 1_000_000 or not 1 <= args.repeat <= 20:
        raise SystemExit("--requests: 1 to 1000000, --repeat: 1 to 20")
    with tempfile.TemporaryDirectory(prefix="cachestack-micro-") as tmp:
        workdir = Path(tmp)
        (workdir / "metrics").mkdir()
        # Multiprocess mode, as under gunicorn: set before the metrics are made.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(workdir / "metrics")
        app = our_app(workdir)
        from cachestack_app import metrics

        from bench.app import floor

        latency = metrics.LATENCY.labels("/")  # resolved once, as the app does
        captured: list[list[tuple[str, str]]] = []
        app(ENVIRON, lambda _status, headers, _exc=None: captured.append(headers))
        n, r = args.requests, args.repeat
        rows = [
            ("floor: the WSGI call", best_us(lambda: floor.app(ENVIRON, start_response), n, r)),
            ("ours: the WSGI call, HIT-LOCAL", best_us(lambda: app(ENVIRON, start_response), n, r)),
            ("  of which the local-hit counter", best_us(metrics.CACHE_LOCAL_HITS.inc, n, r)),
            (
                "  of which the request counter",
                best_us(metrics.REQUESTS.labels("/", "GET", "200").inc, n, r),
            ),
            (
                "  of which the latency histogram",
                best_us(lambda: latency.observe(0.0001), n, r),
            ),
            ("gunicorn: the floor's headers", best_us(gunicorn_headers(floor.HEADERS), n, r)),
            ("gunicorn: our headers", best_us(gunicorn_headers(captured[0]), n, r)),
        ]
    print(f"in-process cost, best of {r} x {n} calls, us per request")
    for name, value in rows:
        print(f"  {name:<36}{value:>8.2f}")
    print(f"  our headers: {', '.join(name for name, _value in captured[0])}")
    print(f"machine: {os.cpu_count()} CPUs, 1-min load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
