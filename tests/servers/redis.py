"""Real Valkey / Redis servers on free loopback ports, for tests.

The engines the product ships, from Debian 13 in containers of the ``cachestack-servers``
image (see ``tests/servers/container.py``): Valkey 8.1 (``valkey-server``), the default
and the engine of every fixture but one, and Redis OSS 8.0 (``redis-server``), the
alternative engine (``engine="redis"``; the ``redis_oss_cluster`` fixture). The server
runs in the foreground as the container's command, from a config file in a temporary
directory mounted at the same path, with ``--network host`` and ``bind 127.0.0.1``: on
the host's loopback only. TLS certificates are copied into that directory, owned by the
container's uid (the key is 0600). Three shapes, like the ones the app meets:

* plain (no TLS, no password);
* TLS and ``requirepass`` (certificates made by the fixture: a CA and a server
  certificate for ``localhost`` / ``127.0.0.1``; clients are not asked for certificates,
  as on ElastiCache);
* a one-shard cluster with TLS and AUTH, one primary and one replica, ``port 0``
  (no plaintext port), ``tls-cluster yes`` and ``tls-replication yes``: the shape of
  ElastiCache's cluster mode. It forms with ``CLUSTER ADDSLOTSRANGE 0 16383``,
  ``CLUSTER MEET`` and ``CLUSTER REPLICATE`` (``valkey-cli --cluster create`` wants three
  primaries).

Use the fixtures from a ``conftest.py``::

    from tests.servers.redis import (  # noqa: F401
        redis_server,  # session: plain Redis
        redis_private_server,  # function: plain Redis of its own (kill/freeze it freely)
        tls_certificates,  # session: CA + server certificate files
        redis_tls_server,  # session: TLS + requirepass
        redis_cluster,  # session: one-shard cluster, TLS + AUTH
        redis_oss_cluster,  # session: the same on Redis OSS 8.0 (redis-server)
    )

Servers are :class:`RedisServer` (``host``, ``port``, ``password``, ``tls``, ``ca_file``,
``client()``, ``stop()``, ``kill()``, ``start()``, ``freeze()``, ``thaw()``); the cluster
is a :class:`RedisClusterServer` (``host``, ``port`` of the primary, ``nodes``,
``client()``). Session servers are shared: flush them (``client().flushall()``) rather than
stop them. ``stop()`` is ``docker stop``, ``kill()`` ``docker kill``, ``freeze()`` ``docker
pause``; ``start()`` again runs a new container on the same port and config. A missing docker
or servers image raises :class:`RedisServerError` (run ``scripts/setup``): tests fail, never
skip.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers import container
from tests.servers.postgresql import free_port

# The engine's server binary in the servers image: Valkey 8.1 by default, Redis OSS 8.0.
ENGINES = {"valkey": "valkey-server", "redis": "redis-server"}
DEFAULT_ENGINE = "valkey"


class RedisServerError(RuntimeError):
    """The test Valkey / Redis server could not be started."""


@dataclass(frozen=True)
class TLSCertificates:
    """PEM files: a CA, and a server certificate + key it signed."""

    directory: Path
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_certificates(
    directory: Path, hostnames: tuple[str, ...] = ("localhost",)
) -> TLSCertificates:
    """Write a throwaway CA and a server certificate for the hostnames and 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cachestack test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName(h) for h in hostnames] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    cert_file = directory / "server.pem"
    key_file = directory / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return TLSCertificates(directory, ca_file, cert_file, key_file)


@dataclass
class RedisServer(container.ContainerServer):
    """One valkey-server (or redis-server) on 127.0.0.1, plain or TLS-only.
    (The container's part is :class:`~tests.servers.container.ContainerServer`'s.)"""

    error = RedisServerError

    basedir: Path
    port: int
    password: str | None = field(default=None, repr=False)
    certs: TLSCertificates | None = None
    cluster: bool = False
    cluster_port: int | None = None
    host: str = "127.0.0.1"
    engine: str = DEFAULT_ENGINE  # "valkey" (valkey-server) or "redis" (redis-server)
    server: container.Container | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise RedisServerError(f"engine {self.engine!r}: not one of {sorted(ENGINES)}")

    @property
    def tls(self) -> bool:
        return self.certs is not None

    @property
    def ca_file(self) -> Path | None:
        return self.certs.ca_file if self.certs else None

    @property
    def conffile(self) -> Path:
        return self.basedir / "redis.conf"

    @property
    def logfile(self) -> Path:
        return self.basedir / "redis.log"

    def write_config(self) -> None:
        self.basedir.mkdir(parents=True, exist_ok=True)
        lines = [
            "bind 127.0.0.1",
            "protected-mode no",
            "daemonize no",
            f"dir {self.basedir}",
            f"logfile {self.logfile}",
            'save ""',
            "appendonly no",
            # A replica's first sync starts at once, not after the default 5 s wait for
            # more replicas (the cluster forms, and a REPLICAOF completes, in ~2 s, not 6).
            "repl-diskless-sync-delay 0",
        ]
        if self.certs:
            # Copies in the mounted directory, owned by the container's uid with it.
            tls = self.basedir / "tls"
            tls.mkdir(exist_ok=True)
            for src in (self.certs.cert_file, self.certs.key_file, self.certs.ca_file):
                shutil.copyfile(src, tls / src.name)
            (tls / self.certs.key_file.name).chmod(0o600)
            lines += [
                "port 0",
                f"tls-port {self.port}",
                f"tls-cert-file {tls / self.certs.cert_file.name}",
                f"tls-key-file {tls / self.certs.key_file.name}",
                f"tls-ca-cert-file {tls / self.certs.ca_file.name}",
                "tls-auth-clients no",
            ]
        else:
            lines.append(f"port {self.port}")
        if self.password:
            lines += [f"requirepass {self.password}", f"masterauth {self.password}"]
        if self.cluster:
            lines += [
                "cluster-enabled yes",
                f"cluster-config-file {self.basedir / 'nodes.conf'}",
                f"cluster-port {self.cluster_port}",
                "cluster-node-timeout 5000",
                "cluster-require-full-coverage yes",
            ]
            if self.certs:
                lines += ["tls-cluster yes", "tls-replication yes"]
        self.conffile.write_text("\n".join(lines) + "\n")
        self.conffile.chmod(0o600)

    @property
    def label(self) -> str:
        return ENGINES[self.engine]

    def new_container(self) -> container.Container:
        return container.Container(
            what=self.engine,
            directory=self.basedir,
            argv=[ENGINES[self.engine], str(self.conffile)],
        )

    def ready(self) -> bool:
        client = self.client(socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()

    def start(self, timeout: float = 20) -> None:
        """Start (or start again, same port and config) and wait for PING."""
        if not self.conffile.exists():
            self.write_config()
        self._start(timeout)

    def client_kwargs(self) -> dict[str, Any]:
        """Connection arguments for redis-py (redis.Redis / RedisCluster)."""
        kwargs: dict[str, Any] = {"host": self.host, "port": self.port}
        if self.password:
            kwargs["password"] = self.password
        if self.certs:
            kwargs["ssl"] = True
            kwargs["ssl_ca_certs"] = str(self.certs.ca_file)
        return kwargs

    def client(self, **extra: Any) -> Any:
        """A redis.Redis client for this server (single node, even in a cluster)."""
        import redis

        return redis.Redis(**{**self.client_kwargs(), **extra})

    def stop(self, timeout: float = 10) -> None:
        """``docker stop``: SIGTERM, then SIGKILL after ``timeout``; waits for it."""
        if self.server is not None:
            self.server.stop(timeout)


def start_redis(
    password: str | None = None,
    certs: TLSCertificates | None = None,
    cluster: bool = False,
    engine: str = DEFAULT_ENGINE,
) -> RedisServer:
    """Start a server of the engine ('valkey' or 'redis') on a free loopback port in a new
    temporary directory."""
    basedir = Path(tempfile.mkdtemp(prefix=f"cachestack-{engine}-"))
    server = RedisServer(
        basedir=basedir,
        port=free_port(),
        password=password,
        certs=certs,
        cluster=cluster,
        cluster_port=free_port() if cluster else None,
        engine=engine,
    )
    try:
        server.start()
    except BaseException:
        server.destroy()
        raise
    return server


@dataclass
class RedisClusterServer(container.Destroyable):
    """A one-shard cluster: nodes[0] is the primary, nodes[1] its replica."""

    nodes: list[RedisServer]
    password: str = field(repr=False)
    certs: TLSCertificates

    @property
    def primary(self) -> RedisServer:
        return self.nodes[0]

    @property
    def host(self) -> str:
        return self.primary.host

    @property
    def port(self) -> int:
        return self.primary.port

    @property
    def ca_file(self) -> Path:
        return self.certs.ca_file

    def client(self, **extra: Any) -> Any:
        """A redis.cluster.RedisCluster client, starting from the primary."""
        from redis.cluster import RedisCluster

        return RedisCluster(**{**self.primary.client_kwargs(), **extra})

    def destroy(self) -> None:
        for node in self.nodes:
            node.destroy()


def _replicate_once_known(deadline: float, execute: Callable[..., Any], *command: Any) -> None:
    """``execute(*command)`` (a CLUSTER REPLICATE), retried every 0.1 s until the replica
    has heard of its primary through the cluster bus, up to ``deadline`` (monotonic)."""
    while True:
        try:
            execute(*command)
            return
        except Exception:  # the replica does not know the primary yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _cluster_info(node: RedisServer) -> dict[str, str]:
    client = node.client()
    try:
        raw = client.execute_command("CLUSTER INFO")
    finally:
        client.close()
    if isinstance(raw, dict):  # redis-py parses CLUSTER INFO
        return {str(k): str(v) for k, v in raw.items()}
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(line.split(":", 1) for line in text.split() if ":" in line)


def start_redis_cluster(
    certs: TLSCertificates, timeout: float = 30, engine: str = DEFAULT_ENGINE
) -> RedisClusterServer:
    """Start two TLS+AUTH cluster nodes of the engine ('valkey' or 'redis') and join them
    as one shard (primary + replica)."""
    password = secrets.token_urlsafe(16)
    nodes: list[RedisServer] = []
    try:
        for _node in range(2):
            nodes.append(start_redis(password=password, certs=certs, cluster=True, engine=engine))
        primary, replica = nodes
        pc, rc = primary.client(), replica.client()
        try:
            pc.execute_command("CLUSTER ADDSLOTSRANGE", 0, 16383)
            pc.execute_command("CLUSTER MEET", replica.host, replica.port, replica.cluster_port)
            primary_id = pc.execute_command("CLUSTER MYID")
            primary_id = primary_id.decode() if isinstance(primary_id, bytes) else primary_id
            deadline = time.monotonic() + timeout
            _replicate_once_known(deadline, rc.execute_command, "CLUSTER REPLICATE", primary_id)
            while True:
                states = [_cluster_info(n).get("cluster_state") for n in nodes]
                role = rc.info("replication")
                if states == ["ok", "ok"] and role.get("master_link_status") == "up":
                    break
                if time.monotonic() > deadline:
                    raise RedisServerError(f"cluster did not form: {states} {role}")
                time.sleep(0.1)
        finally:
            pc.close()
            rc.close()
    except BaseException:
        for node in nodes:
            node.destroy()
        raise
    return RedisClusterServer(nodes=nodes, password=password, certs=certs)


@pytest.fixture(scope="session")
def tls_certificates() -> Iterator[TLSCertificates]:
    """A throwaway CA and a server certificate for localhost and 127.0.0.1."""
    directory = Path(tempfile.mkdtemp(prefix="cachestack-certs-"))
    try:
        yield make_certificates(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """Plain Valkey for the whole session. Flush it, do not stop it."""
    with start_redis() as server:
        yield server


@pytest.fixture
def redis_private_server() -> Iterator[RedisServer]:
    """Plain Valkey of this test's own: kill, freeze and restart it freely."""
    with start_redis() as server:
        yield server


@pytest.fixture(scope="session")
def redis_tls_server(tls_certificates: TLSCertificates) -> Iterator[RedisServer]:
    """Valkey speaking only TLS, with requirepass, for the whole session."""
    with start_redis(password=secrets.token_urlsafe(16), certs=tls_certificates) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster(tls_certificates: TLSCertificates) -> Iterator[RedisClusterServer]:
    """A one-shard Valkey cluster (primary + replica) with TLS and AUTH."""
    with start_redis_cluster(tls_certificates) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_oss_cluster(tls_certificates: TLSCertificates) -> Iterator[RedisClusterServer]:
    """The same one-shard cluster (TLS and AUTH) on Redis OSS 8.0, the alternative engine."""
    with start_redis_cluster(tls_certificates, engine="redis") as cluster:
        yield cluster


@dataclass
class ShardedCluster(container.Destroyable):
    """A cluster of ``shards`` primaries (``primaries[k]``, slots split evenly), each with
    its replicas (``replicas[k]``), and ``spares``: cluster-mode nodes that have met the
    cluster but own no slot (a new shard's primary before a reshard). TLS and AUTH."""

    primaries: list[RedisServer]
    replicas: list[list[RedisServer]]
    spares: list[RedisServer]
    password: str = field(repr=False)
    certs: TLSCertificates

    @property
    def nodes(self) -> list[RedisServer]:
        return [*self.primaries, *(r for rs in self.replicas for r in rs), *self.spares]

    @property
    def ca_file(self) -> Path:
        return self.certs.ca_file

    def command(self, node: RedisServer, *args: Any) -> Any:
        client = node.client(decode_responses=True, socket_timeout=5)
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    def node_id(self, node: RedisServer) -> str:
        return str(self.command(node, "CLUSTER MYID"))

    def info(self, node: RedisServer) -> dict[str, str]:
        return _cluster_info(node)

    def owner(self, slot: int, via: RedisServer) -> int:
        """The port of the primary that ``via`` says owns ``slot`` (CLUSTER SHARDS)."""
        for shard in self.command(via, "CLUSTER SHARDS"):
            shard = _pairs(shard)
            slots = shard.get("slots", [])
            for start, end in zip(slots[0::2], slots[1::2], strict=True):
                if int(start) <= slot <= int(end):
                    for node in shard.get("nodes", []):
                        node = _pairs(node)
                        if node.get("role") == "master" and node.get("health") == "online":
                            return int(node.get("tls-port") or node.get("port"))
        return 0

    def destroy(self) -> None:
        for node in self.nodes:
            node.destroy()


def _pairs(value: Any) -> dict[str, Any]:
    """CLUSTER SHARDS' flat [name, value, ...] lists (RESP2) as a dict."""
    if isinstance(value, dict):
        return value
    return {str(k): v for k, v in zip(value[0::2], value[1::2], strict=True)}


def start_sharded_cluster(
    certs: TLSCertificates,
    shards: int = 3,
    replicas: int = 1,
    spares: int = 0,
    node_timeout_ms: int = 1000,
    timeout: float = 60,
) -> ShardedCluster:
    """Start and form a ``shards`` x (1 + ``replicas``) Valkey cluster with TLS and AUTH,
    plus ``spares`` slotless nodes, with cluster-node-timeout ``node_timeout_ms`` (set at
    run time: a stopped primary's replica takes over within a few seconds)."""
    password = secrets.token_urlsafe(16)
    started: list[RedisServer] = []
    try:
        for _node in range(shards * (1 + replicas) + spares):
            started.append(start_redis(password=password, certs=certs, cluster=True))
        primaries = started[:shards]
        shard_replicas = [
            started[shards + k * replicas : shards + (k + 1) * replicas] for k in range(shards)
        ]
        spare_nodes = started[shards * (1 + replicas) :]
        cluster = ShardedCluster(primaries, shard_replicas, spare_nodes, password, certs)
        for node in started:
            cluster.command(node, "CONFIG SET", "cluster-node-timeout", node_timeout_ms)
        for k, node in enumerate(primaries):
            first, last = 16384 * k // shards, 16384 * (k + 1) // shards - 1
            cluster.command(node, "CLUSTER ADDSLOTSRANGE", first, last)
        for node in started[1:]:
            cluster.command(started[0], "CLUSTER MEET", node.host, node.port, node.cluster_port)
        deadline = time.monotonic() + timeout
        for k, node in enumerate(primaries):
            primary_id = cluster.node_id(node)
            for replica in shard_replicas[k]:
                _replicate_once_known(
                    deadline, cluster.command, replica, "CLUSTER REPLICATE", primary_id
                )
        while True:
            states = [_cluster_info(n).get("cluster_state") for n in started]
            known = [int(_cluster_info(n).get("cluster_known_nodes", 0)) for n in started]
            links = [
                r.client().info("replication").get("master_link_status")
                for rs in shard_replicas
                for r in rs
            ]
            if set(states) == {"ok"} and set(known) == {len(started)} and set(links) <= {"up"}:
                return cluster
            if time.monotonic() > deadline:
                raise RedisServerError(f"cluster did not form: {states} {known} {links}")
            time.sleep(0.2)
    except BaseException:
        for node in started:
            node.destroy()
        raise
