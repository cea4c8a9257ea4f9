"""Hardening (issue 26): /metrics keeps a bounded set of series whatever paths and
methods clients make up, and the app's redirects never echo the client's Host header."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from tests.integration.app.conftest import get, ini

REQUEST_SERIES = "cachestack_http_requests_total{"


def request_series(text: str) -> set[str]:
    """The names-with-labels of cachestack_http_requests_total in /metrics text."""
    return {line.split(" ", 1)[0] for line in text.splitlines() if line.startswith(REQUEST_SERIES)}


def labels(series: str) -> dict[str, str]:
    inside = series[len(REQUEST_SERIES) : -1]
    return dict(pair.split("=", 1) for pair in inside.split(","))


def test_unknown_paths_and_methods_add_no_metrics_series(app_db, clean_redis, gunicorn_factory):
    server = gunicorn_factory(ini(app_db, clean_redis))
    # One request of each kind first: what they count is the bounded set.
    for path, method in [
        ("/", "GET"),
        ("/", "FOO"),
        ("/healthz/live", "GET"),
        ("/healthz/live", "FOO"),
        ("/no-such-page", "GET"),
        ("/no-such-page", "FOO"),
        ("/metrics", "GET"),
    ]:
        get(server.url + path, method=method)
    before = request_series(get(server.url + "/metrics").body)

    # An attacker's sweep: a new path each time, and made-up methods everywhere.
    statuses = {get(f"{server.url}/random-{n}").status for n in range(150)}
    for n in range(30):
        method = f"FOO{n}"
        for path in ("/", "/healthz/live", f"/random-{n}", "/metrics"):
            statuses.add(get(server.url + path, method=method).status)
    assert statuses == {404, 405}

    after = request_series(get(server.url + "/metrics").body)
    new = sorted(after - before)
    assert after == before, f"{len(new)} new series, such as {new[:3]}"
    routes = {labels(s)["route"] for s in after}
    methods = {labels(s)["method"] for s in after}
    assert routes == {'"/"', '"/healthz/live"', '"/metrics"', '"other"'}
    assert methods == {'"GET"', '"other"'}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args, **_kwargs):  # type: ignore[no-untyped-def]
        return None


def test_redirects_do_not_echo_the_host_header(app_db, clean_redis, make_app, gunicorn_factory):
    # Werkzeug's router answers a doubled slash with a redirect to the merged path, built
    # from the Host header unless the app keeps it to a path.
    _app, client = make_app(ini(app_db, clean_redis))
    moved = client.get("/healthz//live", headers={"Host": "evil.example"})
    assert moved.status_code == 308
    assert moved.headers["Location"] == "/healthz/live"

    # The same under gunicorn, as nginx passes it (Host and X-Forwarded-* from the client).
    server = gunicorn_factory(ini(app_db, clean_redis))
    request = urllib.request.Request(  # noqa: S310 - http on loopback
        server.url + "/healthz//live?probe=1",
        headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
    )
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as moved_by_gunicorn:  # 308, not followed
        opener.open(request, timeout=10)
    assert moved_by_gunicorn.value.code == 308
    location = moved_by_gunicorn.value.headers["Location"]
    assert "evil.example" not in location
    assert location == "/healthz/live?probe=1"
