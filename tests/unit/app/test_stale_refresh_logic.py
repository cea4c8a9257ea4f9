"""The cache's settings ([cache] stale_ttl, beta, local_ttl, namespace), its keys, XFetch's
rule and the near cache: pure logic, no servers."""

from __future__ import annotations

import math
import random
import time

import pytest
import yaml
from cachestack_app.cache import CACHE_KEY, SHAPE_VERSION, cache_key, lock_key
from cachestack_app.config import MAX_TTL_SECONDS, ConfigError, parse_config
from cachestack_app.service import Entry, NearCache, xfetch_due

from tests.unit.app.web_app_role import ROLE, render_var

BASE = "[postgresql]\nhost = db\n[redis]\nhost = c\n"


def cache_config(text: str):
    return parse_config(BASE + "[cache]\n" + text).cache


def entry(fresh_until: float, delta: float = 5.0, cached_at: float = 0.0) -> Entry:
    return Entry(b"raw", "v", cached_at, fresh_until, delta)


# -- settings ----------------------------------------------------------------------------


def test_defaults_serve_stale_for_twice_the_ttl_refresh_early_and_keep_no_local_copy():
    config = cache_config("")
    assert (config.ttl, config.stale_ttl, config.beta, config.local_ttl) == (300, 600, 1.0, 0.0)
    assert config.namespace == "cachestack"
    assert cache_config("ttl = 30\n").stale_ttl == 60


def test_settings_are_read_and_zero_turns_each_off():
    text = "ttl = 10\nstale_ttl = 0\nbeta = 0\nlocal_ttl = 0.5\nnamespace = s-1.a_b\n"
    config = cache_config(text)
    assert (config.stale_ttl, config.beta, config.local_ttl) == (0, 0.0, 0.5)
    assert config.namespace == "s-1.a_b"


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("stale_ttl = -1", "stale_ttl"),
        ("stale_ttl = soon", "stale_ttl"),
        ("stale_ttl = 1.5", "stale_ttl"),
        ("beta = -0.5", "beta"),
        ("beta = nan", "beta"),
        ("local_ttl = -1", "local_ttl"),
        ("local_ttl = inf", "local_ttl"),
        ("namespace = a{b}", "namespace"),  # a brace would move the key's hash tag
        ("namespace = a:b", "namespace"),
        ("namespace = -a", "namespace"),
        ("namespace = " + "a" * 65, "namespace"),
        (f"ttl = {MAX_TTL_SECONDS}\nstale_ttl = 1", "stale_ttl"),  # Redis's PX would overflow
    ],
)
def test_bad_settings_are_refused_naming_the_key(line, key):
    with pytest.raises(ConfigError) as error:
        cache_config(line + "\n")
    assert error.value.section == "cache" and error.value.key == key


def test_an_empty_namespace_line_is_refused():
    with pytest.raises(ConfigError, match=r"\[cache\] namespace"):
        cache_config("namespace =\n")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, (300, 600, 1.0, 0.0, "cachestack")),
        ({"web_app_cache_ttl": 30}, (30, 60, 1.0, 0.0, "cachestack")),
        (
            {
                "web_app_cache_stale_ttl": 0,
                "web_app_cache_beta": 2,
                "web_app_cache_local_ttl": 0.5,
                "web_app_cache_namespace": "prod",
            },
            (300, 0, 2.0, 0.5, "prod"),
        ),
    ],
)
def test_the_roles_settings_reach_the_apps_cache_section(overrides, expected):
    # The [cache] lines app.ini.j2 writes, from the role's own defaults, parsed by the app.
    template = (ROLE / "templates" / "app.ini.j2").read_text()
    section = template[template.index("[cache]") :]
    lines = [
        line
        for line in section.splitlines()[1:]
        if line and not line.startswith(("{%", "#", "lock_timeout"))
    ]
    rendered = "\n".join(
        f"{line.split(' = ')[0]} = {render_var(line.split('{{ ')[1].split(' }}')[0], **overrides)}"
        for line in lines
    )
    config = cache_config(rendered + "\n")
    got = (config.ttl, config.stale_ttl, config.beta, config.local_ttl, config.namespace)
    assert got == expected


def test_configure_passes_the_stack_name_as_the_namespace():
    play = yaml.safe_load((ROLE.parents[1] / "playbooks" / "configure.yml").read_text())
    roles = [r for p in play for r in p.get("roles", []) if r["role"].endswith(".web_app")]
    assert roles and all(
        r.get("web_app_cache_namespace") == "{{ cachestack_stack_name }}" for r in roles
    )


# -- keys ------------------------------------------------------------------------------------


def test_namespaces_give_other_keys_in_the_same_cluster_slot():
    a, b = cache_key("stack-a"), cache_key("stack-b")
    assert a != b and lock_key("stack-a") != lock_key("stack-b")
    assert a.startswith("stack-a:") and a.endswith(":" + SHAPE_VERSION)
    for key in (a, b, lock_key("stack-a"), CACHE_KEY):
        assert key[key.index("{") : key.index("}") + 1] == "{slow_version}"
    assert cache_key("cachestack") == CACHE_KEY
    # The key the e2e tests and molecule read is the app's.
    e2e = (ROLE.parents[1] / "tests" / "e2e" / "sandbox.py").read_text()
    assert f'CACHE_KEY = "{CACHE_KEY}"' in e2e
    verify = (ROLE.parents[1] / "molecule" / "web_app" / "verify.yml").read_text()
    assert f'__app_verify_key: "{CACHE_KEY}"' in verify


# -- XFetch --------------------------------------------------------------------------------


def test_xfetch_rule():
    fresh = entry(fresh_until=100.0, delta=5.0)
    # draw = e^-1: -delta * beta * log(draw) = 5 s (beta 1), 10 s (beta 2).
    draw = math.exp(-1)
    assert xfetch_due(fresh, 95.0, 1.0, draw)
    assert not xfetch_due(fresh, 94.9, 1.0, draw)
    assert xfetch_due(fresh, 90.0, 2.0, draw)
    assert not xfetch_due(fresh, 89.9, 2.0, draw)
    assert not xfetch_due(fresh, 99.99, 0.0, 1e-9)  # beta 0: never early
    assert not xfetch_due(entry(100.0, delta=0.0), 99.99, 1.0, 1e-9)
    assert not xfetch_due(fresh, 50.0, 1.0, 1.0)  # log(1) = 0: only at expiry
    assert xfetch_due(fresh, 100.0, 1.0, 1.0)


def test_xfetch_chance_rises_as_expiry_nears():
    rng = random.Random(23)
    fresh = entry(fresh_until=100.0, delta=2.0)

    def share(now: float) -> float:
        return sum(xfetch_due(fresh, now, 1.0, 1.0 - rng.random()) for _i in range(20_000)) / 20_000

    # P = exp(-(fresh_until - now) / (delta * beta)).
    for left in (0.5, 2.0, 6.0):
        assert share(100.0 - left) == pytest.approx(math.exp(-left / 2.0), abs=0.015)


# -- near cache ----------------------------------------------------------------------------


def test_near_cache_expires_after_local_ttl():
    near = NearCache(ttl=0.2)
    now = time.time()
    near.put("k", entry(fresh_until=now + 60), now)
    assert near.get("k") is not None
    time.sleep(0.25)
    assert near.get("k") is None


def test_near_cache_never_outlives_the_entrys_freshness():
    near = NearCache(ttl=60)
    now = time.time()
    near.put("k", entry(fresh_until=now + 0.2), now)
    assert near.get("k") is not None
    time.sleep(0.25)
    assert near.get("k") is None
    near.put("k", entry(fresh_until=now - 1), now)  # already stale: not kept at all
    assert near.get("k") is None


def test_near_cache_is_bounded():
    near = NearCache(ttl=60, max_entries=3)
    now = time.time()
    for index in range(10):
        near.put(f"k{index}", entry(fresh_until=now + 60), now)
    assert len(near) == 3
    assert [near.get(f"k{i}") is not None for i in (6, 7, 8, 9)] == [False, True, True, True]
