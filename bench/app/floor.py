"""The floor: a plain WSGI app that answers a fixed page of the same size with no Redis or
database call. Run under the same gunicorn settings, it shows the fastest req/s and the
lowest p99 this machine gives, so the app's own figures can be read against it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

BODY = (
    b"<!doctype html>\n"
    b'<html lang="en">\n<head><meta charset="utf-8"><title>cachestack</title></head>\n'
    b"<body>\n<h1>cachestack</h1>\n"
    b"<p>Database version: <strong>PostgreSQL 17.12 (Debian 17.12-0+deb13u1) on "
    b"x86_64-pc-linux-gnu, compiled by gcc (Debian 14.2.0-19) 14.2.0, 64-bit</strong></p>\n"
    b"<p>Database host: <strong>127.0.0.1</strong></p>\n"
    b"<p>Elapsed time: <strong>0.0003 s</strong></p>\n"
    b"<p>Cache: <strong>HIT</strong></p>\n"
    b"</body>\n</html>\n"
)
HEADERS = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(BODY)))]


def app(_environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", HEADERS)
    return [BODY]
