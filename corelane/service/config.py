"""Service configuration in one place: a dataclass read from CLI flags and ``CORELANE_*`` env vars.

Precedence: explicit keyword overrides (CLI flags) > environment > defaults. Every field has a safe
default: bind 127.0.0.1, caps on uploads and pixels, Socket.IO same-origin only.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "CORELANE_"
BROKER_SCHEMES = ("redis://", "rediss://", "amqp://", "amqps://", "pyamqp://")
LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _parse_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def split_host(value: str) -> tuple[str, int | None]:
    """Split a ``Host`` header or host entry into (lower-case name, port or None).

    ``example.com:8000`` -> ("example.com", 8000); ``[::1]:80`` -> ("::1", 80); ``localhost`` ->
    ("localhost", None).

    Raises:
        ValueError: not a host name with an optional port.
    """
    text = value.strip().lower()
    port_text: str | None = None
    if text.startswith("["):
        name, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"not a host: {value!r}")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        name, port_text = text.split(":")
    else:
        name = text  # a bare IPv6 address has several colons and no port
    if not name or any(ch in name for ch in "/@?# \t"):
        raise ValueError(f"not a host: {value!r}")
    if port_text is None:
        return name, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"not a port in {value!r}")
    return name, int(port_text)


@dataclass(frozen=True)
class ServiceConfig:
    """Everything ``corelane serve`` can be told.

    Attributes:
        host: address to bind; anything but loopback requires ``api_token``.
        port: TCP port.
        data_dir: where the SQLite database, uploads and outputs live.
        db_url: SQLAlchemy URL; default ``sqlite:///<data_dir>/corelane.db``. PostgreSQL works by
            URL (``postgresql+psycopg://user@host/db``) with the same code.
        workers: engine worker processes (default: the CPUs this process may use).
        threads: web server threads (each open WebSocket holds one).
        max_request_bytes: cap on one upload request (HTTP 413 above it).
        max_file_bytes: cap on one uploaded image (a per-item error above it).
        max_files: cap on the number of images in one job.
        max_pixels: width x height cap, checked from the header before decoding.
        allowed_origins: origins allowed for Socket.IO and state-changing requests in addition
            to the page's own origin (``https://photos.example``).
        allowed_hosts: ``Host`` names accepted in addition to 127.0.0.1, localhost and [::1] on
            ``port`` (and ``host`` itself when it names one address): a name (any port), a
            ``name:port``, or ``*`` for any (only behind a proxy that checks). Every other
            ``Host`` is refused with 421, which stops DNS rebinding.
        keep_days: delete finished jobs and their files this many days after they ended
            (None keeps them until deleted by hand).
        api_token: when set, every API call and Socket.IO connection must present it.
        item_timeout: seconds one image may take before its worker is replaced.
        max_attempts: tries for an image whose worker dies (a poison input) before it fails.
        job_concurrency: images of one job running (or, with a broker, sent) at once; 0 leaves
            only the runner's own limit (all engine workers; the dispatcher's window). Jobs
            share the workers round-robin either way (runners/fair.py).
        max_running_jobs: jobs in the round-robin at once; later ones wait queued, with their
            queue position shown.
        nice: how much lower than the web process the workers run (os.nice increment).
        start_method: how engine workers start; never fork (the web process has threads).
        run_jobs: start the runner (tests of the API alone may turn it off).
        broker_url: a Redis URL (``redis://HOST:6379/0``): items run as Celery tasks on
            ``corelane worker`` hosts and progress travels over Redis pub/sub; None keeps
            everything embedded (the local runner on this machine's cores).
        visibility_timeout: seconds after which Redis hands an unacknowledged task (its worker
            host vanished) to another worker; longer than the slowest image.
        redis_url: the Redis that carries progress (pub/sub), the worker registry and the
            reconciler's lock; default the broker when it is Redis. Required with an amqp://
            broker (RabbitMQ carries the tasks, Redis the progress).
        objects_url: where uploads and outputs live: unset keeps them under
            ``<data_dir>/objects``; ``s3://bucket/prefix`` keeps them in S3 (endpoint from
            ``CORELANE_S3_ENDPOINT_URL``), so worker hosts need no shared directory.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("./corelane-data")
    db_url: str | None = None
    workers: int | None = None
    threads: int = 64
    max_request_bytes: int = 512 * 2**20
    max_file_bytes: int = 50 * 2**20
    max_files: int = 1000
    max_pixels: int = 89_478_485
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    keep_days: float | None = None
    api_token: str | None = None
    item_timeout: float = 120.0
    max_attempts: int = 3
    job_concurrency: int = 0
    max_running_jobs: int = 8
    nice: int = 10
    start_method: str = "forkserver"
    run_jobs: bool = True
    broker_url: str | None = None
    visibility_timeout: float = 3600.0
    redis_url: str | None = None
    objects_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if self.start_method not in ("forkserver", "spawn"):
            raise ValueError("start_method must be forkserver or spawn (the web process has threads)")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is out of range")
        if self.workers is not None and self.workers < 1:
            raise ValueError("workers must be >= 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.job_concurrency < 0:
            raise ValueError(f"job_concurrency must be >= 0 (0: no cap), got {self.job_concurrency}")
        if self.max_running_jobs < 1:
            raise ValueError(f"max_running_jobs must be >= 1, got {self.max_running_jobs}")
        if self.api_token == "":
            object.__setattr__(self, "api_token", None)
        if self.broker_url == "":
            object.__setattr__(self, "broker_url", None)
        if self.broker_url is not None and not self.broker_url.startswith(BROKER_SCHEMES):
            from corelane.service.runners.brokers import mask_url

            raise ValueError("broker must be a redis://, rediss:// or amqp:// URL, got "
                             f"{mask_url(self.broker_url)!r}")
        if self.redis_url == "":
            object.__setattr__(self, "redis_url", None)
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://")):
            from corelane.service.runners.brokers import mask_url

            raise ValueError(f"redis_url must be a redis:// URL, got {mask_url(self.redis_url)!r}")
        if self.broker_url and not self.bus_url:
            raise ValueError("an amqp:// broker carries the tasks only: also give a Redis URL "
                             f"for progress and the worker registry ({ENV_PREFIX}REDIS_URL, "
                             "--redis redis://HOST:6379/0)")
        if self.objects_url == "":
            object.__setattr__(self, "objects_url", None)
        if self.objects_url is not None and not self.objects_url.startswith("s3://"):
            raise ValueError(f"objects must be an s3://bucket/prefix URL, got {self.objects_url!r}")
        if self.visibility_timeout <= 0:
            raise ValueError("visibility_timeout must be > 0 seconds")
        if self.keep_days is not None and self.keep_days <= 0:
            raise ValueError(f"keep_days must be > 0, got {self.keep_days}")
        object.__setattr__(self, "allowed_hosts", tuple(self.allowed_hosts))
        object.__setattr__(self, "allowed_origins",
                           tuple(o.rstrip("/") for o in self.allowed_origins))
        for entry in self.allowed_hosts:
            try:
                if entry != "*":
                    split_host(entry)
            except ValueError:
                raise ValueError(f"allowed host {entry!r}: give a host name with an optional "
                                 f"port (photos.example, photos.example:8443) or *") from None
        for origin in self.allowed_origins:
            if not origin.startswith(("http://", "https://")):
                raise ValueError(f"an allowed origin looks like https://name[:port], "
                                 f"got {origin!r}")

    @property
    def bus_url(self) -> str | None:
        """The Redis of progress events and the worker registry (None when embedded), its TLS
        options in redis-py's spelling (see runners/brokers.py)."""
        from corelane.service.runners.brokers import redis_py_url

        if self.redis_url:
            return redis_py_url(self.redis_url)
        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://")):
            return redis_py_url(self.broker_url)
        return None

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL in effect."""
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.data_dir / 'corelane.db').resolve()}"

    @property
    def is_loopback(self) -> bool:
        """True when ``host`` only accepts connections from this machine."""
        if self.host in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def check_exposure(self) -> None:
        """Refuse to serve beyond loopback without an API token.

        Raises:
            ValueError: ``host`` is not loopback and no ``api_token`` is set.
        """
        if not self.is_loopback and not self.api_token:
            raise ValueError(
                f"binding {self.host} exposes the service beyond this machine: set "
                f"{ENV_PREFIX}API_TOKEN to a secret that clients must present"
            )

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> ServiceConfig:
        """Build a config from ``CORELANE_<FIELD>`` variables, then apply ``overrides``.

        Overrides whose value is None are ignored, so unset CLI flags fall through to the env.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _convert(f.name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> ServiceConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)


_INTS = {"port", "workers", "threads", "max_request_bytes", "max_file_bytes", "max_files",
         "max_pixels", "max_attempts", "nice", "job_concurrency", "max_running_jobs"}
_FLOATS = {"item_timeout", "visibility_timeout", "keep_days"}


def _convert(name: str, raw: str) -> Any:
    try:
        if name in _INTS:
            return int(raw)
        if name in _FLOATS:
            return float(raw)
        if name == "run_jobs":
            return _parse_bool(raw)
        if name in ("allowed_origins", "allowed_hosts"):
            return _parse_list(raw)
        if name == "data_dir":
            return Path(raw)
    except ValueError as exc:
        raise ValueError(f"{ENV_PREFIX}{name.upper()}={raw!r}: {exc}") from None
    return raw
