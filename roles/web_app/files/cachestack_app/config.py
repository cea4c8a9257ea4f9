"""Configuration: one INI file, parsed and validated once at start-up.

Sections and keys (booleans are written ``true``/``false``)::

    [postgresql]  host (required), port, dbname, user, password, sslmode, sslrootcert,
                  connect_timeout, statement_timeout (seconds)
    [redis]       host (required), port, password, username, ssl, ssl_ca_certs, cluster,
                  socket_timeout (seconds)
    [cache]       ttl (seconds), lock_timeout (seconds; by default the slow query's
                  own timeout and more, see PageService)

Every problem raises :class:`ConfigError`, whose message names the file, the section and
the key, so start-up can log one line and stop.
"""

from __future__ import annotations

import configparser
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_PATH = "/etc/cachestack/app.ini"
CONFIG_ENV = "CACHESTACK_APP_CONFIG"

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


class ConfigError(Exception):
    """A configuration problem; the message names file, section and key."""

    def __init__(self, path: str, message: str, section: str | None = None, key: str | None = None):
        where = path
        if section is not None:
            where += f": [{section}]"
            if key is not None:
                where += f" {key}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.section = section
        self.key = key


@dataclass(frozen=True)
class PostgresConfig:
    host: str
    port: int = 5432
    dbname: str = "cachestack"
    user: str = "cachestack"
    password: str = field(default="", repr=False)
    sslmode: str = "prefer"
    sslrootcert: str | None = None
    connect_timeout: int = 3
    statement_timeout: float = 30.0

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for psycopg2.connect (libpq parameters)."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "sslmode": self.sslmode,
            "connect_timeout": self.connect_timeout,
            "application_name": "cachestack_app",
            "options": f"-c statement_timeout={int(self.statement_timeout * 1000)}",
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
        if self.password:
            kwargs["password"] = self.password
        if self.sslrootcert:
            kwargs["sslrootcert"] = self.sslrootcert
        return kwargs


@dataclass(frozen=True)
class RedisConfig:
    host: str
    port: int = 6379
    password: str | None = field(default=None, repr=False)
    username: str | None = None
    ssl: bool = False
    ssl_ca_certs: str | None = None
    cluster: bool = False
    socket_timeout: float = 0.2


@dataclass(frozen=True)
class CacheConfig:
    ttl: int = 300
    # None: wait as long as the request computing the page may take (PageService).
    lock_timeout: float | None = None


@dataclass(frozen=True)
class AppConfig:
    path: str
    postgresql: PostgresConfig
    redis: RedisConfig
    cache: CacheConfig


# --- value parsers: raise ValueError with a short reason ---------------------------------


def _str(value: str) -> str:
    if value == "":
        raise ValueError("must not be empty")
    return value


def _optional_str(value: str) -> str | None:
    return value or None


def _port(value: str) -> int:
    number = _int(value)
    if not 1 <= number <= 65535:
        raise ValueError("must be a port number between 1 and 65535")
    return number


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"must be an integer, got {value!r}") from None


def _positive_int(value: str) -> int:
    number = _int(value)
    if number <= 0:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"must be a number of seconds, got {value!r}") from None
    if number <= 0 or not math.isfinite(number):
        raise ValueError(f"must be a positive number of seconds, got {value!r}")
    return number


# PostgreSQL keeps statement_timeout in whole milliseconds in an int: 0 turns it off.
STATEMENT_TIMEOUT_RANGE = (0.001, 2_147_483.647)
# Redis takes the TTL in milliseconds; beyond this it refuses the SET (and every MISS
# would then open the circuit breaker).
MAX_TTL_SECONDS = 2**31 - 1


def _statement_timeout(value: str) -> float:
    number = _positive_float(value)
    low, high = STATEMENT_TIMEOUT_RANGE
    if not low <= number <= high:
        raise ValueError(f"must be between {low} and {high} seconds, got {value!r}")
    return number


def _ttl(value: str) -> int:
    number = _positive_int(value)
    if number > MAX_TTL_SECONDS:
        raise ValueError(f"must be at most {MAX_TTL_SECONDS} seconds, got {value!r}")
    return number


def _connect_timeout(value: str) -> int:
    number = _positive_int(value)
    if number < 2:  # libpq treats 1 as 2 and 0 as "wait for ever"
        raise ValueError("must be at least 2 seconds")
    return number


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise ValueError(f"must be true or false, got {value!r}")


def _sslmode(value: str) -> str:
    if value not in SSLMODES:
        raise ValueError(f"must be one of {', '.join(SSLMODES)}, got {value!r}")
    return value


def _readable_file(value: str) -> str | None:
    if value == "":
        return None
    path = Path(value)
    if not path.is_file():
        raise ValueError(f"file {value} does not exist")
    if not os.access(path, os.R_OK):
        raise ValueError(f"file {value} is not readable")
    return value


Parser = Callable[[str], Any]

# section -> key -> (parser, required). Defaults come from the dataclasses.
_SCHEMA: dict[str, dict[str, tuple[Parser, bool]]] = {
    "postgresql": {
        "host": (_str, True),
        "port": (_port, False),
        "dbname": (_str, False),
        "user": (_str, False),
        "password": (str, False),
        "sslmode": (_sslmode, False),
        "sslrootcert": (_readable_file, False),
        "connect_timeout": (_connect_timeout, False),
        "statement_timeout": (_statement_timeout, False),
    },
    "redis": {
        "host": (_str, True),
        "port": (_port, False),
        "password": (_optional_str, False),
        "username": (_optional_str, False),
        "ssl": (_bool, False),
        "ssl_ca_certs": (_readable_file, False),
        "cluster": (_bool, False),
        "socket_timeout": (_positive_float, False),
    },
    "cache": {
        "ttl": (_ttl, False),
        "lock_timeout": (_positive_float, False),
    },
}


def _section(parser: configparser.RawConfigParser, path: str, name: str) -> dict[str, Any]:
    if not parser.has_section(name):
        raise ConfigError(path, "section is missing", name)
    schema = _SCHEMA[name]
    values: dict[str, Any] = {}
    for key in parser.options(name):
        if key not in schema:
            raise ConfigError(path, "unknown key", name, key)
    for key, (parse, required) in schema.items():
        if not parser.has_option(name, key):
            if required:
                raise ConfigError(path, "required key is missing", name, key)
            continue
        raw = parser.get(name, key).strip()
        try:
            values[key] = parse(raw)
        except ValueError as exc:
            raise ConfigError(path, str(exc), name, key) from None
    return values


def parse_config(text: str, path: str = "<string>") -> AppConfig:
    """Parse and validate INI text."""
    parser = configparser.RawConfigParser(
        interpolation=None, strict=True, empty_lines_in_values=False
    )
    try:
        parser.read_string(text, source=path)
    except configparser.DuplicateOptionError as exc:
        raise ConfigError(path, "key is set twice", exc.section, exc.option) from None
    except configparser.DuplicateSectionError as exc:
        raise ConfigError(path, "section is set twice", exc.section) from None
    except configparser.Error as exc:
        reason = str(exc).splitlines()[0]
        raise ConfigError(path, f"not a valid INI file: {reason}") from None
    for section in parser.sections():
        if section not in _SCHEMA:
            raise ConfigError(path, "unknown section", section)
    postgresql = PostgresConfig(**_section(parser, path, "postgresql"))
    redis = RedisConfig(**_section(parser, path, "redis"))
    cache_values = _section(parser, path, "cache") if parser.has_section("cache") else {}
    cache = CacheConfig(**cache_values)
    if postgresql.sslrootcert and postgresql.sslmode in ("disable", "allow", "prefer"):
        # libpq reads the CA only to verify (require with a CA file verifies as verify-ca).
        raise ConfigError(
            path,
            f"is set but sslmode {postgresql.sslmode} never verifies the server with it"
            " (use require, verify-ca or verify-full)",
            "postgresql",
            "sslrootcert",
        )
    if redis.ssl_ca_certs and not redis.ssl:
        raise ConfigError(path, "is set but ssl is false", "redis", "ssl_ca_certs")
    if redis.username and not redis.password:
        raise ConfigError(path, "is set without a password", "redis", "username")
    return AppConfig(path=path, postgresql=postgresql, redis=redis, cache=cache)


def load_config(path: str | None = None) -> AppConfig:
    """Read the INI file named by ``path``, $CACHESTACK_APP_CONFIG, or the default path."""
    path = path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "file not found") from None
    except PermissionError:
        raise ConfigError(path, "file is not readable (permission denied)") from None
    except IsADirectoryError:
        raise ConfigError(path, "is a directory, not a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, f"cannot read file: {exc.__class__.__name__}") from None
    return parse_config(text, path)
