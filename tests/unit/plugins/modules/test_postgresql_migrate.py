"""cachestack.aws.postgresql_migrate's own parts: the connection helpers of _postgresql and
how the module is wired to its planning logic. The planning logic itself (names, versions,
checksums, the statement splitter, plans) is tested in
tests/unit/plugins/module_utils/test_migrate_plan.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
COLLECTIONS = ROOT / ".collections"
assert (COLLECTIONS / "ansible_collections" / "cachestack" / "aws").resolve() == ROOT, (
    f"{COLLECTIONS}/ansible_collections/cachestack/aws must link to {ROOT}: run scripts/setup"
)
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.cachestack.aws.plugins.module_utils import (  # noqa: E402
    _migrate_plan as mp,
)
from ansible_collections.cachestack.aws.plugins.module_utils import (  # noqa: E402
    _postgresql as pgu,
)
from ansible_collections.cachestack.aws.plugins.modules import (  # noqa: E402
    postgresql_migrate as pm,
)


def test_the_module_plans_with_module_utils() -> None:
    """The module holds no copy of the planning logic: it runs _migrate_plan's.

    lock_key stays reachable through the module, where the integration fixtures and the
    e2e fault injection look it up to hold the lock a run would take.
    """
    for name in (
        "Migration",
        "MigrationError",
        "build_plan",
        "line_of",
        "load_migrations",
        "lock_key",
        "parse_version",
        "split_statements",
        "version_str",
    ):
        assert getattr(pm, name) is getattr(mp, name), name
    for name in ("parse_filename", "sha256_hex", "refuse_transaction_control", "Plan"):
        assert not hasattr(pm, name), name


# -- connection helpers (module_utils/_postgresql.py) ---------------------------------------


def test_conn_params_maps_options_and_drops_empty() -> None:
    params = {
        "login_host": "db.example",
        "login_port": 5433,
        "login_user": "app",
        "login_password": "s3cret",
        "login_db": "app",
        "login_unix_socket": "",
        "ssl_mode": "verify-full",
        "ca_cert": None,
        "connect_timeout": 7,
    }
    assert pgu.conn_params(params) == {
        "host": "db.example",
        "port": 5433,
        "user": "app",
        "password": "s3cret",
        "dbname": "app",
        "sslmode": "verify-full",
        "connect_timeout": 7,
        "application_name": "cachestack.aws",
    }


def test_conn_params_unix_socket_when_no_host() -> None:
    params = {"login_host": "", "login_unix_socket": "/run/postgresql", "login_password": ""}
    assert pgu.conn_params(params)["host"] == "/run/postgresql"
    assert "password" not in pgu.conn_params(params)


def test_scrub_masks_the_password() -> None:
    assert pgu.scrub("password=hunter2 host=x", "hunter2") == "password=******** host=x"
    assert pgu.scrub("nothing", "") == "nothing"


def test_argument_spec_marks_the_password_no_log() -> None:
    spec = pgu.postgresql_argument_spec()
    assert spec["login_password"]["no_log"] is True
    assert set(spec) >= {
        "login_host",
        "login_port",
        "login_user",
        "login_password",
        "login_db",
        "ssl_mode",
        "ca_cert",
        "connect_timeout",
    }
