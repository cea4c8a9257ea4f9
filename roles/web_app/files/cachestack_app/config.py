"""Configuration: one INI file, parsed and validated once at start-up.

Sections and keys (booleans are written ``true``/``false``)::

    [postgresql]  host (required), port, dbname, user, password or password_file,
                  sslmode, sslrootcert, connect_timeout, statement_timeout (seconds)
    [redis]       host (required), port, password or password_file, username, ssl,
                  ssl_ca_certs, cluster, socket_timeout (seconds)
    [cache]       ttl (seconds), lock_timeout (seconds; by default the slow query's
                  own timeout and more, see PageService), stale_ttl (seconds an entry
                  is served stale after ttl while one request refreshes it; by default
                  STALE_TTL_MULTIPLE times ttl, 0 off), beta (XFetch's early-refresh
                  factor, 0 off), local_ttl (seconds of the per-worker near cache, 0
                  off), namespace (the stack's prefix of the cache keys)

``password_file`` names a file whose content, without its trailing newline, is the
password (the app role writes each secret to a file of its own, so app.ini holds none and
its diff can be shown); it cannot be set with ``password``, and the file must be readable
and not empty.

Every problem raises :class:`ConfigError`, whose message names the file, the section and
the key, so start-up can log one line and stop. No message holds a value from a password
file.
"""

from __future__ import annotations

import configparser
import math
import os
import re
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


# stale_ttl when app.ini does not set it: an entry is served stale (refreshed behind the
# visitor) for twice its fresh life, so a page read less often than every ttl, or a
# database down for a while, still answers at once.
STALE_TTL_MULTIPLE = 2
NAMESPACE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class CacheConfig:
    ttl: int = 300
    # None: wait as long as the request computing the page may take (PageService).
    lock_timeout: float | None = None
    # None: STALE_TTL_MULTIPLE * ttl (resolved by parse_config). 0: no stale serving.
    stale_ttl: int | None = None
    # XFetch (Vattani et al., VLDB 2015): refresh early when
    # now - delta * beta * log(random()) >= fresh_until. 0: never early.
    beta: float = 1.0
    # Seconds a worker keeps the page in memory (the near cache). 0: off.
    local_ttl: float = 0.0
    # The cache keys' prefix: two stacks sharing one cache never read each other's entries.
    namespace: str = "cachestack"


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


def _non_negative_int(value: str) -> int:
    number = _int(value)
    if not 0 <= number <= MAX_TTL_SECONDS:
        raise ValueError(f"must be between 0 and {MAX_TTL_SECONDS} seconds, got {value!r}")
    return number


def _non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"must be a number, got {value!r}") from None
    if number < 0 or not math.isfinite(number):
        raise ValueError(f"must be 0 or more, got {value!r}")
    return number


def _namespace(value: str) -> str:
    if not NAMESPACE_PATTERN.fullmatch(value):
        raise ValueError(
            "must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or"
            f" digit, got {value!r}"
        )
    return value


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
        "password_file": (_str, False),
        "sslmode": (_sslmode, False),
        "sslrootcert": (_readable_file, False),
        "connect_timeout": (_connect_timeout, False),
        "statement_timeout": (_statement_timeout, False),
    },
    "redis": {
        "host": (_str, True),
        "port": (_port, False),
        "password": (_optional_str, False),
        "password_file": (_str, False),
        "username": (_optional_str, False),
        "ssl": (_bool, False),
        "ssl_ca_certs": (_readable_file, False),
        "cluster": (_bool, False),
        "socket_timeout": (_positive_float, False),
    },
    "cache": {
        "ttl": (_ttl, False),
        "lock_timeout": (_positive_float, False),
        "stale_ttl": (_non_negative_int, False),
        "beta": (_non_negative_float, False),
        "local_ttl": (_non_negative_float, False),
        "namespace": (_namespace, False),
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
    if "password_file" in values:
        if parser.has_option(name, "password"):
            raise ConfigError(path, "cannot be set with password", name, "password_file")
        try:
            values["password"] = _read_secret(values.pop("password_file"))
        except ValueError as exc:
            raise ConfigError(path, str(exc), name, "password_file") from None
    return values


def _read_secret(value: str) -> str:
    """The content of a password file without its trailing newline; ValueError (naming
    the file, never its content) when it cannot be read or is empty."""
    try:
        text = Path(value).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"file {value} does not exist") from None
    except PermissionError:
        raise ValueError(f"file {value} is not readable (permission denied)") from None
    except IsADirectoryError:
        raise ValueError(f"{value} is a directory, not a file") from None
    except UnicodeDecodeError:
        raise ValueError(f"file {value} is not UTF-8 text") from None
    except OSError as exc:
        raise ValueError(f"cannot read file {value}: {exc.__class__.__name__}") from None
    secret = text.removesuffix("\n").removesuffix("\r")
    if secret == "":
        raise ValueError(f"file {value} is empty")
    return secret


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
    if cache_values.get("stale_ttl") is None:
        ttl = cache_values.get("ttl", CacheConfig.ttl)
        cache_values["stale_ttl"] = min(STALE_TTL_MULTIPLE * ttl, MAX_TTL_SECONDS - ttl)
    elif cache_values.get("ttl", CacheConfig.ttl) + cache_values["stale_ttl"] > MAX_TTL_SECONDS:
        raise ConfigError(
            path, f"and ttl add up to more than {MAX_TTL_SECONDS} seconds", "cache", "stale_ttl"
        )
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
