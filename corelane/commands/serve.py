"""``corelane serve``: the image web service on gunicorn (gthread worker, WebSocket included).

Why gunicorn with one gthread process: Flask-SocketIO keeps its rooms in memory, so one process
serves every client; threads carry concurrent requests and each open WebSocket (simple-websocket
needs no monkey-patching, so the engine's worker processes start clean). The app is built inside
the gunicorn worker process, so the job runner thread and its engine pool live there too.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from corelane.service.config import ServiceConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to bind (default 127.0.0.1; others need "
                                       "CORELANE_API_TOKEN)")
    parser.add_argument("--port", type=int, help="TCP port (default 8000)")
    parser.add_argument("--data-dir", type=Path, help="database, uploads and outputs "
                                                      "(default ./corelane-data)")
    parser.add_argument("--workers", type=int, help="engine worker processes (default: all CPUs)")
    parser.add_argument("--db", dest="db_url", help="SQLAlchemy URL (default SQLite in the "
                                                    "data dir; postgresql+psycopg://... works)")
    parser.add_argument("--threads", type=int, help="web server threads (default 64)")
    parser.add_argument("--broker", dest="broker_url",
                        help="redis://... or amqp://...: run items on `corelane worker` hosts "
                             "via Celery (default: embedded, this machine's cores)")
    parser.add_argument("--redis", dest="redis_url",
                        help="with an amqp:// --broker: Redis URL for progress and the worker "
                             "registry (default: the broker when it is Redis)")
    parser.add_argument("--objects", dest="objects_url",
                        help="s3://bucket/prefix: keep uploads and outputs in S3 (endpoint: "
                             "CORELANE_S3_ENDPOINT_URL; credentials: AWS_* variables); default "
                             "the data dir")
    parser.add_argument("--visibility-timeout", type=float,
                        help="with --broker: seconds before an unacknowledged task is redelivered")
    parser.add_argument("--allowed-host", dest="allowed_hosts", action="append", metavar="NAME",
                        help="a host name (or name:port) that may reach the service besides "
                             "127.0.0.1, localhost and [::1]; repeat for more "
                             "(CORELANE_ALLOWED_HOSTS). Others get 421 (DNS rebinding)")
    parser.add_argument("--keep-days", type=float, metavar="DAYS",
                        help="delete finished jobs and their files DAYS after they ended "
                             "(default: keep until deleted)")
    parser.add_argument("--job-concurrency", type=int, metavar="N",
                        help="images of one job running at once (default 0: no cap; jobs share "
                             "the workers round-robin either way)")
    parser.add_argument("--log-level", default="info", help="gunicorn log level (default info)")


def build_config(args: argparse.Namespace) -> ServiceConfig:
    """CLI flags over ``CORELANE_*`` env vars over defaults."""
    return ServiceConfig.from_env(host=args.host, port=args.port, data_dir=args.data_dir,
                                  workers=args.workers, db_url=args.db_url, threads=args.threads,
                                  broker_url=args.broker_url,
                                  visibility_timeout=args.visibility_timeout,
                                  objects_url=args.objects_url, redis_url=args.redis_url,
                                  allowed_hosts=tuple(args.allowed_hosts or ()) or None,
                                  keep_days=args.keep_days,
                                  job_concurrency=args.job_concurrency)


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _post_worker_init(worker: Any) -> None:
    """On SIGTERM, close every Socket.IO connection at once, so the worker's graceful stop does
    not wait ``graceful_timeout`` for WebSockets that would never end by themselves (browsers
    reconnect to another node, or to this one when it is back).

    The closing thread starts here and waits; the handler only sets an Event (a thread started
    inside a signal handler can deadlock on threading's own lock, if the signal lands while the
    main thread holds it)."""
    previous = signal.getsignal(signal.SIGTERM)
    stopping = threading.Event()
    threading.Thread(target=_close_sockets, args=(worker, stopping), name="corelane-close-ws",
                     daemon=True).start()

    def on_term(signum: int, frame: Any) -> None:
        if callable(previous):
            previous(signum, frame)
        stopping.set()

    signal.signal(signal.SIGTERM, on_term)


GRACEFUL_TIMEOUT = 5  # s gunicorn gives a stopping worker before it kills it
CLOSE_EVERY = 0.05  # s between passes closing the WebSockets of a stopping worker
CUT_AFTER = 0.5  # s a client has to answer the close frame before its connection is cut


class _WebSocketConnections:
    """WSGI middleware that knows the raw socket of every WebSocket request being served.

    A WebSocket request lasts as long as its connection, and a stopping gunicorn worker waits
    for its requests (up to ``graceful_timeout``). A client that does not answer the close
    frame (frozen, on a dead network, or just slow on a loaded machine: seen in CI) held the
    stop for the whole 5 s; its connection is cut instead (``shutdown``: the request's thread
    reads the end and returns, and gunicorn closes the socket it owns)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        sock = environ.get("gunicorn.socket")
        if sock is None or environ.get("HTTP_UPGRADE", "").lower() != "websocket":
            return self.app(environ, start_response)
        with self._lock:
            self._open.add(sock)
        try:  # the WebSocket is served inside this call (threading mode) until it closes
            return self.app(environ, start_response)
        finally:
            with self._lock:
                self._open.discard(sock)

    def cut(self) -> None:
        with self._lock:
            open_now = list(self._open)
        for sock in open_now:
            with contextlib.suppress(OSError):  # closed meanwhile
                sock.shutdown(socket.SHUT_RDWR)


def _close_sockets(worker: Any, stopping: threading.Event) -> None:
    """Once the worker stops, close every Socket.IO connection, and keep closing new ones until
    it exits (clients reconnect 0.5-1.5 s after being closed, and the worker's accept loop
    notices the stop only when its 1 s poll returns); past CUT_AFTER, cut the connections of
    clients that did not answer."""
    stopping.wait()
    app = getattr(worker, "wsgi", None)
    service = getattr(app, "extensions", {}).get("corelane")
    if service is None:
        return
    eio = service.socketio.server.eio
    connections = getattr(app, "wsgi_app", None)
    started = time.monotonic()
    while time.monotonic() < started + GRACEFUL_TIMEOUT:  # a daemon thread: ends with the process
        try:
            for sid, sock in list(eio.sockets.items()):
                # A close frame, without waiting for it to go out: engine.io's own disconnect()
                # waits on each socket's send queue, and a socket caught mid-connect blocked it
                # (and every socket after it) until gunicorn killed the worker.
                sock.close(wait=False, reason=eio.reason.SERVER_DISCONNECT)
                eio.sockets.pop(sid, None)
            if isinstance(connections, _WebSocketConnections) and (
                    time.monotonic() >= started + CUT_AFTER):
                connections.cut()
        except Exception as exc:  # shutting down anyway: never block the exit on this
            print(f"corelane: closing WebSockets failed: {exc}", file=sys.stderr, flush=True)
            return
        time.sleep(CLOSE_EVERY)


def _worker_exit(_server: Any, worker: Any) -> None:
    service = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("corelane")
    if service is not None:
        service.close()


def make_server(config: ServiceConfig, log_level: str = "info") -> Any:
    """A gunicorn application serving ``create_app(config)`` (not started)."""
    from gunicorn.app.base import BaseApplication

    class CorelaneServer(BaseApplication):
        def load_config(self) -> None:
            settings = {
                "bind": [_bind(config.host, config.port)],
                "workers": 1,  # Socket.IO state lives in one process (no sticky sessions)
                "worker_class": "gthread",
                "threads": config.threads,
                "timeout": 60,
                "graceful_timeout": GRACEFUL_TIMEOUT,
                "keepalive": 5,
                "loglevel": log_level,
                "accesslog": None,
                "errorlog": "-",
                "proc_name": "corelane-serve",
                "worker_exit": _worker_exit,
                "post_worker_init": _post_worker_init,
                "when_ready": lambda _server: print(
                    f"corelane: serving http://{_bind(config.host, config.port)}/ "
                    f"(data in {config.data_dir.resolve()}); Ctrl-C stops", flush=True),
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from corelane.service.app import create_app

            app = create_app(config)
            app.wsgi_app = _WebSocketConnections(app.wsgi_app)  # type: ignore[method-assign]
            return app

    return CorelaneServer()


def run(args: argparse.Namespace) -> int:
    try:
        config = build_config(args)
        config.check_exposure()
    except ValueError as exc:
        print(f"corelane serve: {exc}", file=sys.stderr)
        return 2
    make_server(config, args.log_level).run()
    return 0
