# Copyright: (c) 2026, cachestack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared PostgreSQL connection options and connect helper (private to cachestack.aws).

Modelled on community.postgresql's ``module_utils/postgres.py``: the modules take the
same ``login_*`` options, documented once in the ``cachestack.aws.postgresql`` doc
fragment. Only psycopg2 is supported; its absence is reported through
``missing_required_lib`` rather than a traceback.
"""

from __future__ import annotations

import traceback
from typing import Any

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.text.converters import to_native

PSYCOPG2_IMPORT_ERROR = None
try:
    import psycopg2
    import psycopg2.errorcodes
    import psycopg2.extensions
    import psycopg2.sql

    HAS_PSYCOPG2 = True
except ImportError:
    psycopg2 = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = traceback.format_exc()


SSL_MODES = ["allow", "disable", "prefer", "require", "verify-ca", "verify-full"]

# Module option -> libpq keyword.
_CONN_PARAMS = {
    "login_host": "host",
    "login_port": "port",
    "login_user": "user",
    "login_password": "password",
    "login_db": "dbname",
    "ssl_mode": "sslmode",
    "ca_cert": "sslrootcert",
    "connect_timeout": "connect_timeout",
}


def postgresql_argument_spec() -> dict[str, Any]:
    """Connection options shared by the collection's PostgreSQL modules."""
    return dict(
        login_host=dict(type="str", default="", aliases=["host"]),
        login_unix_socket=dict(type="str", default="", aliases=["unix_socket"]),
        login_port=dict(type="int", default=5432, aliases=["port"]),
        login_user=dict(type="str", default="postgres", aliases=["login"]),
        login_password=dict(type="str", default="", no_log=True),
        login_db=dict(type="str", default="", aliases=["db"]),
        ssl_mode=dict(type="str", default="prefer", choices=SSL_MODES),
        ca_cert=dict(type="str", aliases=["ssl_rootcert"]),
        connect_timeout=dict(type="int", default=10),
    )


def ensure_psycopg2(module: Any) -> None:
    """Fail with Ansible's standard message when psycopg2 cannot be imported."""
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=PSYCOPG2_IMPORT_ERROR)


def conn_params(params: dict[str, Any]) -> dict[str, Any]:
    """Translate module options to psycopg2/libpq keyword arguments.

    Empty values are left out so libpq applies its own defaults; ``login_unix_socket``
    is used as the host when no host (or ``localhost``) is given.
    """
    kw = {
        libpq: params[opt]
        for opt, libpq in _CONN_PARAMS.items()
        if params.get(opt) not in (None, "")
    }
    if kw.get("host") in (None, "localhost") and params.get("login_unix_socket"):
        kw["host"] = params["login_unix_socket"]
    kw["application_name"] = "cachestack.aws"
    return kw


def scrub(text: str, secret: str | None) -> str:
    """Return text with every occurrence of secret masked."""
    if secret:
        text = text.replace(secret, "********")
    return text


def connect(module: Any, autocommit: bool = True, readonly: bool = False) -> Any:
    """Open a psycopg2 connection from the module's options or fail the module.

    The error message names the server and user but never the password, even when
    libpq echoes parts of the connection string back.
    """
    ensure_psycopg2(module)
    kw = conn_params(module.params)
    password = module.params.get("login_password")
    conn = None
    try:
        # In the startup packet, not a SET: RESET ALL (run after each migration) keeps it.
        conn = psycopg2.connect(client_encoding="UTF8", **kw)
        conn.set_session(autocommit=autocommit, readonly=readonly)
    except Exception as e:  # psycopg2 raises OperationalError and friends
        where = "{}@{}:{}/{}".format(
            kw.get("user", ""),
            kw.get("host", "(local socket)"),
            kw.get("port", ""),
            kw.get("dbname", ""),
        )
        module.fail_json(
            msg=f"unable to connect to database {where}: {scrub(to_native(e).strip(), password)}"
        )
    return conn


def pg_error_text(error: Exception) -> str:
    """PostgreSQL's own message for a psycopg2 error, with its detail and hint."""
    diag = getattr(error, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag else None
    if not primary:
        return to_native(error).strip()
    parts = []
    severity = getattr(diag, "severity", None)
    parts.append(f"{severity}: {primary}" if severity else primary)
    for label, attr in (("DETAIL", "message_detail"), ("HINT", "message_hint")):
        value = getattr(diag, attr, None)
        if value:
            parts.append(f"{label}: {value}")
    code = getattr(error, "pgcode", None)
    if code:
        parts.append(f"(SQLSTATE {code})")
    return " ".join(parts)
