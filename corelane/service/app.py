"""The Flask app factory: wires config, store, objects, bus, runner, REST, Socket.IO and the page.

Socket.IO runs in ``threading`` mode (WebSocket through simple-websocket), so nothing is
monkey-patched and the engine's worker processes (forkserver or spawn, never fork: this process
has threads) start clean.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, jsonify, make_response, redirect, render_template, request
from flask_socketio import SocketIO
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from corelane.errors import ServiceError
from corelane.service import api, similar_api, sockets, workers_api
from corelane.service.bus import Bus, BusEvent, LocalBus
from corelane.service.config import ServiceConfig
from corelane.service.guard import TOKEN_COOKIE, HostGuard, origin_ok, token_matches, token_ok
from corelane.service.jobs import EventName
from corelane.service.objects import ObjectStore, open_objects
from corelane.service.retention import RetentionSweeper
from corelane.service.runners.local import LocalRunner
from corelane.service.store import Store
from corelane.service.uploads import UploadRequest

if TYPE_CHECKING:
    from corelane.service.runners.celery import CeleryRunner

log = logging.getLogger(__name__)

CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


@dataclass
class Service:
    """Everything one app instance owns (``app.extensions["corelane"]``)."""

    config: ServiceConfig
    store: Store
    objects: ObjectStore
    bus: Bus
    socketio: SocketIO
    runner: LocalRunner | CeleryRunner | None = None
    sweeper: RetentionSweeper | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def workers(self) -> int:
        """Engine worker processes in effect."""
        from corelane.engine._startmethod import available_cpus

        return self.config.workers or available_cpus()

    def publish(self, name: EventName, job_id: str, data: dict[str, Any]) -> None:
        self.bus.publish(BusEvent(name.value, job_id, data))

    def wake_runner(self) -> None:
        if self.runner is not None:
            self.runner.wake()

    def cancel_running(self, job_id: str) -> None:
        if self.runner is not None:
            self.runner.cancel(job_id)

    def running_job(self) -> str | None:
        return self.runner.current_job if self.runner is not None else None

    def close(self) -> None:
        """Stop the runner (and its workers), the sweeper, the bus and the database pool."""
        if self.sweeper is not None:
            self.sweeper.stop()
        if self.runner is not None:
            self.runner.stop()
        self.bus.close()
        self.store.close()


def _error(status: int, kind: str, message: str) -> Any:
    return jsonify({"error": {"type": kind, "message": message, "status": status}}), status


def create_app(config: ServiceConfig | None = None, **runner_options: Any) -> Flask:
    """Build the web app for ``config`` (default: from ``CORELANE_*`` env vars).

    Args:
        config: the service configuration.
        runner_options: passed to :class:`LocalRunner` (e.g. ``process_fn`` in tests).

    The runner starts at once when ``config.run_jobs``; call
    ``app.extensions["corelane"].close()`` to stop it.
    """
    config = config or ServiceConfig.from_env()
    config.data_dir.mkdir(parents=True, exist_ok=True)
    app = Flask(__name__, template_folder="ui/templates", static_folder="ui/static")
    app.request_class = UploadRequest  # uploads stream into the object store (uploads.py)
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes
    app.config["MAX_FORM_PARTS"] = config.max_files + 64
    app.json.sort_keys = False  # type: ignore[attr-defined]

    store = Store(config.database_url)
    objects = open_objects(config)  # the data dir, or S3 (objects.py)
    bus: Bus
    if config.broker_url:
        # Distributed: events from any worker host arrive over Redis pub/sub, and Socket.IO
        # shares rooms through Redis too, so several web processes can serve the same jobs.
        from corelane.service.bus_redis import RedisBus

        bus = RedisBus(config.bus_url or config.broker_url)
    else:
        bus = LocalBus()
    # engine.io calls this for every handshake that carries an Origin: the page's own origin
    # plus the listed ones (a plain list would replace the page's own origin).
    socketio = SocketIO(app, async_mode="threading",
                        cors_allowed_origins=lambda origin, environ: origin_ok(config, origin,
                                                                               environ),
                        max_http_buffer_size=64 * 1024, ping_interval=10,
                        message_queue=config.bus_url)
    # Outermost: a foreign Host is refused before Flask or Socket.IO sees the request.
    app.wsgi_app = HostGuard(app.wsgi_app, config)  # type: ignore[method-assign]
    service = Service(config, store, objects, bus, socketio)
    app.extensions["corelane"] = service

    app.register_blueprint(api.bp)
    app.register_blueprint(workers_api.bp)
    app.register_blueprint(similar_api.bp)
    sockets.register(socketio, service)

    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> Any:
        return _error(exc.status, type(exc).__name__, str(exc))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if not request.path.startswith("/api/"):
            return exc
        status = exc.code or 500
        if isinstance(exc, RequestEntityTooLarge):
            limit = config.max_request_bytes // 2**20
            return _error(413, "UploadRejected",
                          f"the upload is larger than the {limit} MiB limit per request")
        return _error(status, type(exc).__name__, exc.description or exc.name)

    @app.after_request
    def _headers(response: Any) -> Any:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if response.mimetype == "text/html":
            response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    @app.get("/")
    def index() -> Any:
        token = request.args.get("token")
        if token is not None and config.api_token and not token_matches(config, token):
            return render_template("index.html", needs_token=True, bad_token=True,
                                   config=config, workers=service.workers), 401
        if token is not None:
            # Trade a ?token= link for an HttpOnly cookie, then drop it from the address bar.
            response = make_response(redirect("/"))
            if config.api_token:
                response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict",
                                    secure=request.is_secure)
            return response
        return render_template("index.html", needs_token=not token_ok(config, request),
                               bad_token=False, config=config, workers=service.workers)

    if config.run_jobs:
        if config.broker_url:
            from corelane.service.runners.celery import CeleryRunner

            service.runner = CeleryRunner(store, objects, bus, config)
        else:
            service.runner = LocalRunner(store, objects, bus, config, **runner_options)
        service.runner.start()
        if config.keep_days is not None:
            service.sweeper = RetentionSweeper(service, config.keep_days)
            service.sweeper.start()
    return app
