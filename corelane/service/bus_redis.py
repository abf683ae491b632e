"""Progress over Redis pub/sub: events published on any host reach every web process.

Same three methods as :class:`~corelane.service.bus.LocalBus`. Events are JSON (never pickle).
Pub/sub is fire-and-forget: an event published while the Redis connection is down is lost, which
is acceptable because events only speed up what the store already knows (the page re-reads the
truth on the next event or reconnect). The subscriber reconnects by itself, with backoff.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable

import redis

from corelane.service.bus import BusEvent, Handler, call_handlers
from corelane.service.runners.brokers import describe, mask_url, redis_py_url

log = logging.getLogger(__name__)

CHANNEL = "corelane:events"
RECONNECT_MAX_S = 2.0  # cap of the reconnect backoff: progress resumes within this after Redis returns
POLL_S = 0.2  # how long one get_message waits, so close() is noticed promptly


def redis_client(url: str, timeout: float = 5.0) -> redis.Redis:
    """A client with bounded waits: no call blocks forever on a dead connection."""
    return redis.Redis.from_url(redis_py_url(url), socket_timeout=timeout,
                                socket_connect_timeout=timeout,
                                health_check_interval=10, retry_on_timeout=True)


class RedisBus:
    """Publish to, and subscribe from, one Redis pub/sub channel."""

    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        self.url = url
        self.channel = channel
        self._client = redis_client(url)
        self._handlers: list[Handler] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self.reconnects = 0
        self.connected = False  # the subscriber holds a live subscription
        self.last_error: str | None = None  # why it does not (masked: never a password)
        self._on_reconnect: list[Callable[[float], None]] = []

    def publish(self, event: BusEvent) -> None:
        try:
            self._client.publish(self.channel, json.dumps(event.to_dict()))
        except redis.RedisError as exc:
            log.warning("progress event %s for job %s not sent: %s", event.name, event.job_id, exc)

    def on_reconnect(self, callback: Callable[[float], None]) -> None:
        """Call ``callback(lost_at)`` (in the listener thread, ``time.time()`` of the loss) each
        time the subscription comes back: events published meanwhile are gone, so receivers
        must re-read the truth."""
        self._on_reconnect.append(callback)

    def deliver_local(self, event: BusEvent) -> None:
        """Give ``event`` to this process's handlers only (not published to other nodes)."""
        call_handlers(self._handlers, event)

    def health(self) -> tuple[bool, str | None]:
        """(True, None) while subscribed; otherwise (False, why)."""
        if self._thread is None:
            return True, None  # nobody subscribed: publishing alone needs no subscription
        return self.connected, None if self.connected else (self.last_error or "connecting")

    def subscribe(self, handler: Handler) -> None:
        with self._lock:
            self._handlers.append(handler)
            if self._thread is None:
                self._thread = threading.Thread(target=self._listen, name="corelane-redis-bus",
                                                daemon=True)
                self._thread.start()

    def _listen(self) -> None:
        backoff = 0.1
        lost = False  # the previous subscription failed: resync once the new one is confirmed
        last_ok = time.time()
        while not self._closed.is_set():
            pubsub = None
            subscribed = 0
            try:
                # Subscribe confirmations stay visible: redis-py reconnects and resubscribes a
                # dropped PubSub by itself, and its fresh "subscribe" reply is how we learn that
                # events were missed in between.
                pubsub = redis_client(self.url).pubsub()
                pubsub.subscribe(self.channel)
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=POLL_S)
                    if message is not None:
                        kind = message.get("type")
                        if kind == "message":
                            self._dispatch(message["data"])
                        elif kind == "subscribe":
                            subscribed += 1
                            if lost or subscribed > 1:
                                self.reconnects += subscribed > 1
                                lost = False
                                self._resync(last_ok)
                    self.connected, self.last_error, backoff = True, None, 0.1
                    last_ok = time.time()
            except (redis.RedisError, OSError) as exc:
                self.connected, lost = False, True
                self.last_error = describe(exc)
                if self._closed.is_set():
                    break
                self.reconnects += 1
                log.warning("Redis bus lost its connection (%s); reconnecting in %.1f s",
                            self.last_error, backoff)
                self._closed.wait(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_S)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(redis.RedisError, OSError):
                        pubsub.close()

    def _resync(self, lost_at: float) -> None:
        for callback in list(self._on_reconnect):
            try:
                callback(lost_at)
            except Exception:
                log.exception("bus reconnect callback %r failed", callback)

    def _dispatch(self, raw: bytes | str) -> None:
        try:
            event = BusEvent.from_dict(json.loads(raw))
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed event on %s", self.channel)
            return
        call_handlers(self._handlers, event)

    def close(self, timeout: float = 2.0) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._client.close()


def wait_for_redis(url: str, timeout: float = 10.0) -> None:
    """Block until Redis answers PING (bounded); raise ConnectionError otherwise."""
    client = redis_client(url)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.RedisError as exc:
            if time.monotonic() > deadline:
                raise ConnectionError(f"Redis at {mask_url(url)} does not answer: {exc}") from None
            time.sleep(0.1)
        finally:
            client.close()
