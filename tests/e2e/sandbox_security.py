"""Security of the deployed sandbox: the app's, nginx's and PostgreSQL's units' hardening
scores, secrets kept out of output, logs and loose files, Redis and PostgreSQL refusing the
wrong clients, certificates renewed before they expire, and nothing published but
127.0.0.1:8080."""

from __future__ import annotations

import datetime
import json
import re
import stat

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.e2e.sandbox import (
    CONTAINERS,
    SECRETS_DIR,
    PlaybookRun,
    ansible_playbook,
    docker,
    get,
    in_container,
    secret,
)

SECRETS = ("db_password", "cache_auth_token")


def exposure(unit: str, container: str = "cachestack-web") -> float:
    shown = in_container(container, "systemd-analyze", "security", "--no-pager", unit)
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", shown.stdout)
    assert score, shown.stdout[-500:]
    return float(score[1])


def test_app_unit_is_hardened(first_deploy: PlaybookRun) -> None:
    app, nginx = exposure("cachestack-app.service"), exposure("nginx.service")
    db = exposure("postgresql@17-main.service", "cachestack-db")
    print(f"systemd-analyze security: cachestack-app {app}, nginx {nginx}, postgresql {db}")
    assert app <= 1.5
    # Debian's units alone score 9.6; with the roles' drop-ins nginx 2.5 (its master starts
    # as root) and PostgreSQL 1.3.
    assert nginx <= 3.0
    assert db <= 1.5


def test_no_secret_in_verbose_output_journal_or_nginx_logs(first_deploy: PlaybookRun) -> None:
    verbose = ansible_playbook("site.yml", "-vvv")
    assert verbose.returncode == 0, verbose.tail()
    get()
    journal = in_container("cachestack-web", "journalctl", "--no-pager", "-o", "cat").stdout
    journal += in_container("cachestack-db", "journalctl", "--no-pager", "-o", "cat").stdout
    journal += in_container("cachestack-cache", "journalctl", "--no-pager", "-o", "cat").stdout
    nginx_logs = in_container(
        "cachestack-web", "sh", "-c", "cat /var/log/nginx/*.log 2>/dev/null"
    ).stdout
    for name in SECRETS:
        value = secret(name)
        assert len(value) >= 16
        assert value not in verbose.output, f"{name} in ansible-playbook -vvv output"
        assert value not in journal, f"{name} in a journal"
        assert value not in nginx_logs, f"{name} in nginx's logs"


def test_secrets_and_app_config_are_not_world_readable(first_deploy: PlaybookRun) -> None:
    assert stat.S_IMODE(SECRETS_DIR.stat().st_mode) == 0o700
    for name in SECRETS:
        assert stat.S_IMODE((SECRETS_DIR / name).stat().st_mode) == 0o600
    # app.ini and the secrets' files beside it (its password_file lines name them).
    config_files = ("app.ini", "db-password", "cache-auth-token")
    paths = [f"/etc/cachestack/{name}" for name in config_files]
    shown = in_container("cachestack-web", "stat", "-c", "%n %a %U %G", *paths)
    rows = [line.split() for line in shown.stdout.splitlines()]
    assert [row[0] for row in rows] == paths, shown.stdout
    for path, mode, owner, group in rows:
        assert (mode, owner) == ("640", "root"), path
        assert group != "root", path


def test_redis_refuses_plaintext_and_clients_without_the_token(first_deploy: PlaybookRun) -> None:
    plaintext = in_container(
        "cachestack-cache",
        "valkey-cli",
        "-h",
        "cachestack-cache",
        "-p",
        "6379",
        "PING",
        check=False,
    )
    assert "PONG" not in plaintext.stdout
    tls = (
        "valkey-cli",
        "--tls",
        "--cacert",
        "/etc/valkey/tls/ca.crt",
        "-h",
        "cachestack-cache",
        "-p",
        "6379",
        "PING",
    )
    no_token = in_container("cachestack-cache", *tls, check=False)
    assert "NOAUTH" in no_token.stdout + no_token.stderr
    with_token = in_container(
        "cachestack-cache", *tls, env={"REDISCLI_AUTH": secret("cache_auth_token")}
    )
    assert with_token.stdout.strip() == "PONG"


def test_postgresql_refuses_clients_other_than_the_web_host(first_deploy: PlaybookRun) -> None:
    dsn = "host=cachestack-db dbname=cachestack user=cachestack sslmode=require connect_timeout=5"
    probe = ["psql", dsn, "-tAc", "SELECT 1"]
    env = {"PGPASSWORD": secret("db_password")}
    refused = in_container("cachestack-db", *probe, check=False, env=env)
    assert refused.returncode != 0
    assert "no pg_hba.conf entry" in refused.stderr


def test_only_127_0_0_1_8080_is_published(first_deploy: PlaybookRun) -> None:
    inspected = docker("inspect", *CONTAINERS)
    published = {
        c["Name"].lstrip("/"): {
            port: [(b["HostIp"], b["HostPort"]) for b in bindings or []]
            for port, bindings in (c["NetworkSettings"]["Ports"] or {}).items()
            if bindings
        }
        for c in json.loads(inspected)
    }
    assert published == {
        "cachestack-web": {"80/tcp": [("127.0.0.1", "8080")]},
        "cachestack-db": {},
        "cachestack-cache": {},
    }


TLS_DIR = SECRETS_DIR / "tls"


def sign_short_lived_db_certificate(days: int) -> None:
    """Replace the database's certificate with one the sandbox CA signs for `days` days:
    what the run would find 825 - `days` days after it issued the certificate."""
    ca_key = serialization.load_pem_private_key((TLS_DIR / "ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((TLS_DIR / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((TLS_DIR / "cachestack-db.key").read_bytes(), None)
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cachestack-db")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("cachestack-db")]), False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            False,
        )
        # The identifiers x509_certificate adds: without them it would replace the
        # certificate for not matching, whatever its dates.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    (TLS_DIR / "cachestack-db.crt").write_bytes(pem)


def days_left_served_by_postgresql() -> float:
    """Days until the certificate PostgreSQL presents expires, read from the web host."""
    shown = in_container(
        "cachestack-web",
        "sh",
        "-c",
        "openssl s_client -connect cachestack-db:5432 -starttls postgres </dev/null 2>/dev/null"
        " | openssl x509 -noout -enddate",
    )
    ends = datetime.datetime.strptime(
        shown.stdout.strip().removeprefix("notAfter="), "%b %d %H:%M:%S %Y %Z"
    ).replace(tzinfo=datetime.UTC)
    return (ends - datetime.datetime.now(datetime.UTC)).total_seconds() / 86400


def test_a_certificate_near_its_expiry_is_renewed_and_served(first_deploy: PlaybookRun) -> None:
    sign_short_lived_db_certificate(days=10)
    run = ansible_playbook("site.yml")
    assert run.returncode == 0, run.tail()
    assert "cachestack.aws.sandbox_tls_ca : Sign the server certificates (or renew them)" in (
        run.changed_tasks("localhost")
    ), run.tail()
    renewed = x509.load_pem_x509_certificate((TLS_DIR / "cachestack-db.crt").read_bytes())
    assert renewed.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > datetime.timedelta(
        days=800
    )
    assert days_left_served_by_postgresql() > 800
    assert get().status == 200
