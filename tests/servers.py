"""Real servers for integration tests, each started by the test run on a free loopback port.

``redis_server()`` runs ``redis-server --port N --save ""``; ``moto_server()`` runs moto's
S3-compatible HTTP server (``moto_server``, from the test extra); ``rabbitmq_server()`` runs a
rabbitmq-server node of its own (name, ports, config, data); ``postgres_server()`` creates a
throw-away PostgreSQL cluster with ``initdb`` in a temp dir (as the ``postgres`` user when we are
root, since PostgreSQL refuses to run as root). When the program is missing the tests skip
locally, and fail under ``CI=true`` (CI must install it: see scripts/ensure-system-deps.sh).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require(program: str, what: str) -> str:
    """Path of ``program``, or skip (fail under CI=true) when it is missing."""
    path = shutil.which(program) or next(iter(sorted(glob.glob(program))), None)
    if path:
        return path
    message = f"{what} ({program}) is not installed"
    if os.environ.get("CI") == "true":
        pytest.fail(message + "; CI must install it (scripts/ensure-system-deps.sh)")
    pytest.skip(message)
    raise AssertionError  # unreachable


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen[bytes]
    password: str | None = None
    tls: bool = False

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"{'rediss' if self.tls else 'redis'}://{auth}127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start_redis(port: int | None = None, password: str | None = None,
                tls: ServerCerts | None = None) -> RedisServer:
    """redis-server on ``port`` (default: a free one), no persistence, optionally a password,
    optionally TLS only (``tls``: the server certificate, signed by a test CA)."""
    exe = require("redis-server", "Redis")
    port = port or free_port()
    cmd = [exe, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    if tls is not None:
        cmd += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", tls.cert,
                "--tls-key-file", tls.key, "--tls-ca-cert-file", tls.ca, "--tls-auth-clients", "no"]
    else:
        cmd += ["--port", str(port)]
    if password:
        cmd += ["--requirepass", password]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
    except TimeoutError:
        proc.kill()
        raise
    return RedisServer(port, proc, password, tls is not None)


@dataclass
class ServerCerts:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost, made with openssl."""

    ca: str
    cert: str
    key: str


def make_certs(folder: str) -> ServerCerts:
    openssl = require("openssl", "OpenSSL")
    ca_key, ca, key, csr, cert = (os.path.join(folder, n) for n in
                                  ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = os.path.join(folder, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for cmd in (
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
         "-days", "2", "-subj", "/CN=corelane test CA"],
        [openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", "/CN=127.0.0.1"],
        [openssl, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext],
    ):
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return ServerCerts(ca, cert, key)


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class PostgresServer:
    port: int
    datadir: str
    ctl: list[str]
    start_args: list[str] | None = None  # what start() passes to pg_ctl

    def stop(self) -> None:
        """Stop the server now (connections drop); start() brings it back on the same port."""
        subprocess.run(_as_postgres([*self.ctl, "-m", "immediate", "stop"]), capture_output=True,
                       timeout=30)

    def start(self) -> None:
        assert self.start_args is not None
        subprocess.run(_as_postgres([*self.ctl, *self.start_args]), check=True,
                       capture_output=True, timeout=60)
        wait_port(self.port)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    initdb = require("/usr/lib/postgresql/*/bin/initdb", "PostgreSQL")
    bindir = os.path.dirname(initdb)
    tmp = tempfile.mkdtemp(prefix="corelane-pg-")
    os.chmod(tmp, 0o777)
    datadir = os.path.join(tmp, "data")
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
    subprocess.run(_as_postgres([initdb, "-D", datadir, "-U", "postgres", "-A", "trust"]),
                   check=True, capture_output=True, timeout=60)
    port = free_port()
    opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
    ctl = [os.path.join(bindir, "pg_ctl"), "-D", datadir]
    server = PostgresServer(port, datadir, ctl, ["-o", opts, "-l", os.path.join(tmp, "log"), "-w",
                                                 "start"])
    server.start()
    try:
        yield server
    finally:
        subprocess.run(_as_postgres([*ctl, "-m", "immediate", "stop"]), capture_output=True, timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


# Credentials moto accepts (any); set for the test process and passed to the servers it starts.
S3_TEST_ENV = {"AWS_ACCESS_KEY_ID": "corelane-test", "AWS_SECRET_ACCESS_KEY": "corelane-test",
               "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class MotoServer:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint,
                            aws_access_key_id=S3_TEST_ENV["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=S3_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
                            region_name=S3_TEST_ENV["AWS_DEFAULT_REGION"])

    def env(self) -> dict[str, str]:
        """What a corelane process needs to use this server."""
        return {**S3_TEST_ENV, "CORELANE_S3_ENDPOINT_URL": self.endpoint}


@contextlib.contextmanager
def moto_server() -> Iterator[MotoServer]:
    beside = os.path.join(os.path.dirname(sys.executable), "moto_server")
    exe = shutil.which("moto_server") or require(beside, "moto's S3 server (moto[server])")
    port = free_port()
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, timeout=30)
        yield MotoServer(port, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class RabbitServer:
    port: int
    proc: subprocess.Popen[bytes]
    base: str

    @property
    def url(self) -> str:
        return f"amqp://corelane:{RABBIT_PASSWORD}@127.0.0.1:{self.port}//"

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        shutil.rmtree(self.base, ignore_errors=True)


RABBIT_PASSWORD = "corelane-rabbit-pw"


def start_rabbitmq(timeout: float = 90.0) -> RabbitServer:
    """A throw-away rabbitmq-server node: its own name, ports, config and data in a temp dir.

    Nothing of a system RabbitMQ is used (not its port 5672, config, plugins or data); only the
    Erlang port mapper daemon (epmd) is shared, as every node on a host shares it.
    """
    exe = require("/usr/lib/rabbitmq/bin/rabbitmq-server", "RabbitMQ")
    base = tempfile.mkdtemp(prefix="corelane-rabbit-")
    port, dist = free_port(), free_port()
    name = f"corelane{port}@localhost"
    config = os.path.join(base, "rabbitmq.conf")
    with open(config, "w") as f:
        f.write(f"listeners.tcp.local = 127.0.0.1:{port}\n"
                f"default_user = corelane\ndefault_pass = {RABBIT_PASSWORD}\n"
                "loopback_users = none\n")
    plugins = os.path.join(base, "enabled_plugins")
    with open(plugins, "w") as f:
        f.write("[].\n")
    env_file = os.path.join(base, "rabbitmq-env.conf")
    open(env_file, "w").close()  # noqa: SIM115 - an empty file: ignore the system's env file
    env = {**os.environ, "RABBITMQ_NODENAME": name, "RABBITMQ_NODE_PORT": str(port),
           "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_DIST_PORT": str(dist),
           "RABBITMQ_MNESIA_BASE": os.path.join(base, "mnesia"),
           "RABBITMQ_LOG_BASE": os.path.join(base, "log"), "RABBITMQ_CONFIG_FILE": config,
           "RABBITMQ_ENABLED_PLUGINS_FILE": plugins, "RABBITMQ_CONF_ENV_FILE": env_file,
           "ERL_EPMD_ADDRESS": "127.0.0.1",
           "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}"}
    log = open(os.path.join(base, "server.log"), "wb")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen([exe], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=base,
                            start_new_session=True)
    log.close()
    server = RabbitServer(port, proc, base)
    try:
        wait_port(port, timeout)
    except TimeoutError:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def rabbitmq_server() -> Iterator[RabbitServer]:
    server = start_rabbitmq()
    try:
        yield server
    finally:
        server.stop()
