"""Metrics labels from bounded sets, and redirect targets kept to a path on this site."""

from __future__ import annotations

import pytest
from cachestack_app import metrics
from cachestack_app.app import COUNTED_METHODS, method_label, site_relative


def test_known_methods_by_name_any_other_as_other():
    assert {method_label(m) for m in COUNTED_METHODS} == set(COUNTED_METHODS)
    assert {method_label(m) for m in ("FOO", "PROPFIND", "get", "X" * 200, "")} == {"other"}


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://evil.example/healthz/live", "/healthz/live"),
        ("https://evil.example:8443/healthz/live?a=1#f", "/healthz/live?a=1#f"),
        ("//evil.example/x", "/x"),  # protocol-relative: would leave the site
        ("/\\evil.example/x", "/evil.example/x"),  # read as //evil.example by some browsers
        ("///evil.example", "/evil.example"),
        ("/healthz/live", "/healthz/live"),
        ("http://evil.example", "/"),
    ],
)
def test_redirects_keep_to_a_path_on_this_site(location, expected):
    assert site_relative(location) == expected


def test_every_outcome_is_counted_and_refresh_labels_are_a_fixed_set():
    assert set(metrics.OUTCOME_COUNTERS) == {"HIT", "HIT-LOCAL", "STALE", "MISS", "BYPASS"}
    for counter in (
        metrics.REFRESHES_STARTED,
        metrics.REFRESHES_FINISHED,
        metrics.REFRESHES_FAILED,
    ):
        samples = {
            s.labels["trigger"]
            for m in counter.collect()
            for s in m.samples
            if s.name.endswith("_total")
        }
        assert samples == set(metrics.REFRESH_TRIGGERS) == {"stale", "early"}


def test_cluster_redirects_by_a_fixed_kind_and_retries_unlabelled():
    samples = {
        s.labels["kind"]
        for m in metrics.CACHE_REDIRECTS.collect()
        for s in m.samples
        if s.name.endswith("_total")
    }
    assert samples == set(metrics.REDIRECT_KINDS) == {"moved", "ask"}
    assert all(not s.labels for m in metrics.CACHE_RETRIES.collect() for s in m.samples), (
        "retries carry no label"
    )
