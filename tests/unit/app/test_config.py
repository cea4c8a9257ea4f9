"""INI parsing and validation: defaults, every kind of bad value, messages naming
file, section and key."""

from __future__ import annotations

import pytest
from cachestack_app.config import ConfigError, load_config, parse_config

MINIMAL = "[postgresql]\nhost = db.example\n\n[redis]\nhost = cache.example\n"


def test_minimal_config_has_sensible_defaults():
    config = parse_config(MINIMAL, "/etc/cachestack/app.ini")
    pg, redis, cache = config.postgresql, config.redis, config.cache
    assert (pg.host, pg.port, pg.sslmode, pg.sslrootcert) == ("db.example", 5432, "prefer", None)
    assert pg.statement_timeout == 30 and pg.connect_timeout == 3
    assert (redis.host, redis.port, redis.password, redis.username) == (
        "cache.example",
        6379,
        None,
        None,
    )
    assert redis.ssl is False and redis.cluster is False
    assert redis.socket_timeout == 0.2
    assert cache.ttl == 300
    assert cache.lock_timeout is None  # derived from the query timeouts (PageService)


def test_full_config(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    text = (
        "[postgresql]\nhost = db\nport = 6543\ndbname = app\nuser = u\npassword = p%w d;#x\n"
        f"sslmode = verify-full\nsslrootcert = {ca}\nconnect_timeout = 4\n"
        "statement_timeout = 7.5\n"
        f"[redis]\nhost = r\nport = 6380\npassword = tok\nusername = app\nssl = true\n"
        f"ssl_ca_certs = {ca}\ncluster = TRUE\nsocket_timeout = 0.5\n"
        "[cache]\nttl = 60\nlock_timeout = 12.5\n"
    )
    config = parse_config(text, "app.ini")
    assert config.postgresql.password == "p%w d;#x"  # no interpolation, no comment parsing
    kwargs = config.postgresql.connect_kwargs()
    assert kwargs["sslmode"] == "verify-full"
    assert kwargs["sslrootcert"] == str(ca)
    assert kwargs["options"] == "-c statement_timeout=7500"
    assert kwargs["connect_timeout"] == 4 and kwargs["port"] == 6543
    assert config.redis.ssl and config.redis.cluster and config.redis.username == "app"
    assert config.redis.socket_timeout == 0.5
    assert config.cache.ttl == 60 and config.cache.lock_timeout == 12.5


def test_secrets_are_not_in_repr():
    text = MINIMAL.replace("host = db.example", "host = db\npassword = s3cret").replace(
        "host = cache.example", "host = c\npassword = t0ken"
    )
    config = parse_config(text)
    assert "s3cret" not in repr(config) and "t0ken" not in repr(config)


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("[redis]\nhost = c\n", "[postgresql]", "section is missing"),
        ("[postgresql]\nhost = d\n", "[redis]", "section is missing"),
        ("[postgresql]\nport = 1\n[redis]\nhost = c\n", "[postgresql] host", "required key"),
        ("[postgresql]\nhost =\n[redis]\nhost = c\n", "[postgresql] host", "must not be empty"),
        (MINIMAL + "[cache]\nttl = soon\n", "[cache] ttl", "must be an integer"),
        (MINIMAL + "[cache]\nttl = 0\n", "[cache] ttl", "positive integer"),
        (MINIMAL.replace("cache.example", "c\nport = 70000"), "[redis] port", "port number"),
        (MINIMAL.replace("cache.example", "c\nssl = yes"), "[redis] ssl", "true or false"),
        (MINIMAL.replace("cache.example", "c\ncluster = 1"), "[redis] cluster", "true or false"),
        (
            MINIMAL.replace("cache.example", "c\nsocket_timeout = -1"),
            "[redis] socket_timeout",
            "positive number",
        ),
        (
            MINIMAL.replace("db.example", "d\nsslmode = on"),
            "[postgresql] sslmode",
            "must be one of",
        ),
        (
            MINIMAL.replace("db.example", "d\nsslrootcert = /nonexistent/ca.pem"),
            "[postgresql] sslrootcert",
            "does not exist",
        ),
        (
            MINIMAL.replace("db.example", "d\nconnect_timeout = 1"),
            "[postgresql] connect_timeout",
            "at least 2",
        ),
        (
            MINIMAL.replace("db.example", "d\nstatement_timeout = nan"),
            "[postgresql] statement_timeout",
            "positive number",
        ),
        (MINIMAL.replace("db.example", "d\nhots = x"), "[postgresql] hots", "unknown key"),
        (MINIMAL + "[extra]\nx = 1\n", "[extra]", "unknown section"),
        (MINIMAL + "[redis]\nhost = again\n", "[redis]", "set twice"),
        (
            MINIMAL.replace("db.example", "d\nport = 1\nport = 2"),
            "[postgresql] port",
            "set twice",
        ),
        ("host = nowhere\n", "app.ini", "not a valid INI file"),
        (
            MINIMAL.replace("cache.example", "c\nusername = app"),
            "[redis] username",
            "without a password",
        ),
        # 0.0004 s would round to 0 ms, which turns PostgreSQL's timeout off.
        (
            MINIMAL.replace("db.example", "d\nstatement_timeout = 0.0004"),
            "[postgresql] statement_timeout",
            "between 0.001 and 2147483.647",
        ),
        (
            MINIMAL.replace("db.example", "d\nstatement_timeout = 3000000"),
            "[postgresql] statement_timeout",
            "between 0.001 and 2147483.647",
        ),
        (MINIMAL + "[cache]\nttl = 10000000000000000\n", "[cache] ttl", "at most 2147483647"),
    ],
)
def test_bad_config_names_file_section_and_key(text, where, reason):
    with pytest.raises(ConfigError) as info:
        parse_config(text, "app.ini")
    message = str(info.value)
    assert message.startswith("app.ini")
    assert where in message
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize("sslmode", ["disable", "allow", "prefer"])
def test_sslrootcert_needs_an_sslmode_that_verifies(tmp_path, sslmode):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    text = MINIMAL.replace("db.example", f"d\nsslmode = {sslmode}\nsslrootcert = {ca}")
    refused = rf"\[postgresql\] sslrootcert: is set but sslmode {sslmode}"
    with pytest.raises(ConfigError, match=refused):
        parse_config(text, "app.ini")
    for verifying in ("require", "verify-ca", "verify-full"):
        config = parse_config(text.replace(f"sslmode = {sslmode}", f"sslmode = {verifying}"))
        assert config.postgresql.sslrootcert == str(ca)


def test_ssl_ca_certs_requires_ssl(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(ConfigError, match=r"\[redis\] ssl_ca_certs: is set but ssl is false"):
        parse_config(MINIMAL.replace("cache.example", f"c\nssl_ca_certs = {ca}"), "app.ini")


def test_load_config_missing_file(tmp_path):
    path = tmp_path / "nope.ini"
    with pytest.raises(ConfigError, match=rf"^{path}: file not found$"):
        load_config(str(path))


def test_load_config_directory(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(str(tmp_path))


def test_load_config_from_environment(tmp_path, monkeypatch):
    path = tmp_path / "app.ini"
    path.write_text(MINIMAL)
    monkeypatch.setenv("CACHESTACK_APP_CONFIG", str(path))
    assert load_config().path == str(path)
    assert load_config().postgresql.host == "db.example"


def test_create_app_exits_3_on_bad_config(tmp_path, capsys):
    from cachestack_app import create_app

    path = tmp_path / "app.ini"
    path.write_text("[postgresql]\nhost = d\n")
    with pytest.raises(SystemExit) as info:
        create_app(str(path))
    assert info.value.code == 3
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1
    assert f"configuration error: {path}: [redis]: section is missing" in lines[0]
    assert "Traceback" not in err


# --- password_file: the secrets in files of their own, app.ini without them ------------


@pytest.mark.parametrize("section", ["postgresql", "redis"])
@pytest.mark.parametrize("ending", ["", "\n", "\r\n"])
def test_password_file_gives_its_content_without_the_trailing_newline(tmp_path, section, ending):
    secret = tmp_path / "secret"
    secret.write_bytes(f"s3 cr%t;#{ending}".encode())
    host = "db.example" if section == "postgresql" else "cache.example"
    config = parse_config(MINIMAL.replace(host, f"{host}\npassword_file = {secret}"), "app.ini")
    assert getattr(config, section).password == "s3 cr%t;#"
    assert "s3 cr" not in repr(config)


def test_password_file_and_username_make_an_authenticated_redis_client(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("t0ken\n")
    text = MINIMAL.replace("cache.example", f"c\nusername = app\npassword_file = {secret}")
    redis = parse_config(text, "app.ini").redis
    assert (redis.username, redis.password) == ("app", "t0ken")


def test_password_file_is_read_when_the_config_is_loaded(tmp_path):
    secret = tmp_path / "db-password"
    secret.write_text("first\n")
    path = tmp_path / "app.ini"
    path.write_text(MINIMAL.replace("db.example", f"db\npassword_file = {secret}"))
    assert load_config(str(path)).postgresql.password == "first"
    secret.write_text("second\n")
    assert load_config(str(path)).postgresql.connect_kwargs()["password"] == "second"


@pytest.mark.parametrize("section", ["postgresql", "redis"])
def test_bad_password_file_names_section_and_key_never_the_secret(tmp_path, section):
    host = "db.example" if section == "postgresql" else "cache.example"
    where = f"app.ini: [{section}] password_file: "
    secret = tmp_path / "secret"
    secret.write_text("hunter2-secret\n")

    def refused(line: str) -> str:
        with pytest.raises(ConfigError) as info:
            parse_config(MINIMAL.replace(host, f"{host}\n{line}"), "app.ini")
        message = str(info.value)
        assert message.startswith(where), message
        assert (info.value.section, info.value.key) == (section, "password_file")
        assert "hunter2" not in message and "\n" not in message
        return message.removeprefix(where)

    both = f"password = hunter2-inline\npassword_file = {secret}"
    assert refused(both) == "cannot be set with password"
    assert (
        refused(f"password_file = {tmp_path / 'nope'}")
        == f"file {tmp_path / 'nope'} does not exist"
    )
    assert refused(f"password_file = {tmp_path}") == f"{tmp_path} is a directory, not a file"
    assert refused("password_file =") == "must not be empty"
    empty = tmp_path / "empty"
    for content in (b"", b"\n"):
        empty.write_bytes(content)
        assert refused(f"password_file = {empty}") == f"file {empty} is empty"
    binary = tmp_path / "binary"
    binary.write_bytes(b"hunter2\xff\xfe")
    assert refused(f"password_file = {binary}") == f"file {binary} is not UTF-8 text"


def test_the_roles_app_ini_names_the_secrets_files_and_holds_no_secret():
    from tests.unit.app.web_app_role import CONFIG_DIR, render_template, render_var

    text = render_template("app.ini.j2", cachestack_cache_auth_token="tok-Secret-7")
    for secret in ("tok-Secret-7", "placeholder", render_var("__web_app_db_app_password")):
        assert secret not in text
    assert f"password_file = {CONFIG_DIR}/db-password" in text
    assert f"password_file = {CONFIG_DIR}/cache-auth-token" in text
    assert "password =" not in text
    config = parse_config(text)  # reads the two files the test folder holds
    assert (config.postgresql.password, config.redis.password) == ("placeholder", "placeholder")
    # A cache without AUTH: no token file named, no password.
    without = parse_config(render_template("app.ini.j2", cachestack_cache_auth_token=""))
    assert without.redis.password is None
    assert without.postgresql.password == "placeholder"
