"""``corelane worker``: run image items from the broker on this host (Celery prefork pool).

Start any number of these, on any hosts that reach the broker, the database and the objects (a
shared data dir, or ``--objects s3://bucket/prefix``): ``corelane worker --broker
redis://HOST:6379/0 --db postgresql+psycopg://... --data-dir /shared/corelane-data
--concurrency 8``. With RabbitMQ: ``--broker amqp://USER:PASS@HOST:5672// --redis
redis://HOST:6379/0`` (tasks over AMQP, progress and the worker registry over Redis).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
from pathlib import Path

from corelane.service.config import ENV_PREFIX, ServiceConfig
from corelane.service.runners.brokers import mask_url


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", dest="broker_url",
                        help="broker URL: redis://HOST:6379/0 or amqp://USER:PASS@HOST:5672// "
                             "(or CORELANE_BROKER_URL)")
    parser.add_argument("--redis", dest="redis_url",
                        help="Redis URL for progress and the worker registry (default: the "
                             "broker when it is Redis; required with amqp://)")
    parser.add_argument("--db", dest="db_url", help="SQLAlchemy URL of the job store (default "
                                                    "SQLite in the data dir)")
    parser.add_argument("--data-dir", type=Path, help="the data dir shared with `corelane serve`")
    parser.add_argument("--concurrency", type=int, help="worker processes (default: all CPUs)")
    parser.add_argument("--visibility-timeout", type=float,
                        help="seconds before Redis hands a vanished host's task to another "
                             "worker (default 3600)")
    parser.add_argument("--objects", dest="objects_url",
                        help="s3://bucket/prefix for uploads and outputs, the same as `corelane "
                             "serve --objects` (endpoint: CORELANE_S3_ENDPOINT_URL); then no "
                             "shared data dir is needed")
    parser.add_argument("--name", help="this worker's name in the workers view "
                                       "(default HOST-PID)")
    parser.add_argument("--loglevel", default="INFO", help="Celery log level (default INFO)")


def run(args: argparse.Namespace) -> int:
    try:
        config = ServiceConfig.from_env(broker_url=args.broker_url, redis_url=args.redis_url,
                                        db_url=args.db_url,
                                        data_dir=args.data_dir,
                                        visibility_timeout=args.visibility_timeout,
                                        objects_url=args.objects_url)
    except ValueError as exc:
        print(f"corelane worker: {mask_url(str(exc))}", file=sys.stderr)
        return 2
    if not config.broker_url:
        print("corelane worker: --broker redis://HOST:6379/0 is required", file=sys.stderr)
        return 2
    from corelane.engine._startmethod import available_cpus
    from corelane.service.bus_redis import redis_client
    from corelane.service.runners.celery import make_celery
    from corelane.service.runners.registry import start_heartbeat

    concurrency = args.concurrency or available_cpus()
    name = args.name or f"{socket.gethostname()}-{os.getpid()}"
    # The pool's children read their configuration from the environment (see _context()).
    os.environ.update({
        ENV_PREFIX + "BROKER_URL": config.broker_url,
        ENV_PREFIX + "REDIS_URL": config.bus_url or "",
        ENV_PREFIX + "DATA_DIR": str(config.data_dir.resolve()),
        ENV_PREFIX + "DB_URL": config.database_url,
        ENV_PREFIX + "VISIBILITY_TIMEOUT": str(config.visibility_timeout),
        ENV_PREFIX + "OBJECTS_URL": config.objects_url or "",
        "CORELANE_WORKER_NAME": name,
    })
    app = make_celery(config)
    stop = threading.Event()
    assert config.bus_url  # ServiceConfig requires one with a broker
    beat = start_heartbeat(redis_client(config.bus_url), name, concurrency, stop)
    try:
        app.worker_main([
            "worker", "--pool=prefork", f"--concurrency={concurrency}", f"--hostname={name}@%h",
            "--without-gossip", "--without-mingle", "--queues=corelane",
            f"--loglevel={args.loglevel}",
        ])
    finally:
        stop.set()
        beat.join(5)
    return 0
