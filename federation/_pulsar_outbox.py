"""What a Pulsar endpoint has handed to the client and the broker has not yet confirmed.

The client confirms (or fails) each send on its own thread. A publish waits while too
many bytes are unconfirmed; failed messages are sent again; the outbox gives up after
``patience`` seconds of failures, or of silence: the client re-sends without end what a
broker refuses (a message over a limit the broker did not announce, as pulsar-lite does).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from functools import partial
from typing import Any, Callable

from federation._pulsar_conf import FATAL, HINTS
from flow.core.errors import FederationError

log = logging.getLogger("federation.pulsar")

#: (channel, message id, data)
Entry = tuple[str, str, bytes]
#: hands one entry to the client with the callback it calls with (result, message id)
SendAsync = Callable[[Entry, Callable[[Any, Any], None]], None]


class Outbox:
    def __init__(self, send: SendAsync, where: Callable[[str], tuple[str, str]], patience: float,
                 client_error: type[Exception]):  # fmt: skip
        """``where(channel)`` is (service URL, topic), for messages; ``client_error`` is the
        client's exception class, raised when it refuses a message before queueing it."""
        self._send_async, self._where, self._patience, self._client_error = send, where, patience, client_error
        self._cond = threading.Condition()
        self._inflight: dict[int, Entry] = {}
        self._inflight_bytes, self._tokens = 0, itertools.count()
        self._failed: list[tuple[Entry, str]] = []
        self._failing_since: float | None = None
        self._progress = time.monotonic()  # when the client last confirmed or failed a send

    def put(self, entry: Entry, limit: int) -> None:
        """Send ``entry`` once at most ``limit`` bytes are unconfirmed."""
        self.drain(limit)
        self._send(entry)

    def _send(self, entry: Entry) -> None:
        token = next(self._tokens)
        with self._cond:
            if not self._inflight:
                self._progress = time.monotonic()
            self._inflight[token] = entry
            self._inflight_bytes += len(entry[2])
        try:
            self._send_async(entry, partial(self._on_sent, token))
        except self._client_error as exc:  # refused before it was queued
            self._on_sent(token, type(exc).__name__, None)
        except BaseException:  # no producer: nothing was handed over
            with self._cond:
                if self._inflight.pop(token, None) is not None:
                    self._inflight_bytes -= len(entry[2])
            raise

    def _on_sent(self, token: int, result: Any, _msg_id: Any) -> None:
        """Runs on the client's thread when the broker confirmed (or the send failed)."""
        with self._cond:
            entry = self._inflight.pop(token, None)
            self._progress = time.monotonic()
            if entry is not None:
                self._inflight_bytes -= len(entry[2])
                name = result if isinstance(result, str) else getattr(result, "name", str(result))
                if name == "Ok":
                    self._failing_since = None
                else:
                    self._failed.append((entry, name))
            self._cond.notify_all()

    def drain(self, limit: int) -> None:
        """Wait until at most ``limit`` bytes are unconfirmed, re-sending failed messages."""
        patience = self._patience
        while True:
            with self._cond:
                while self._inflight_bytes > limit and not self._failed:
                    if time.monotonic() - self._progress > patience:
                        url, topic = self._where(next(iter(self._inflight.values()))[0])
                        raise FederationError(
                            f"Pulsar at {url}: {len(self._inflight)} message(s) to {topic} not confirmed in "
                            f"{patience:g}s; if the broker refuses them as too big, set "
                            f"federation.pulsar.max_message_size to its limit"
                        )
                    self._cond.wait(0.5)
                failed, self._failed = self._failed, []
            if not failed:
                return
            now = time.monotonic()
            self._failing_since = self._failing_since or now
            fatal = next((why for _, why in failed if why in FATAL), None)
            if fatal or now - self._failing_since > patience:
                url, topic = self._where(failed[0][0][0])
                why = fatal or f"{failed[0][1]}, still failing after {patience:g}s"
                raise FederationError(f"Pulsar at {url}: cannot publish to {topic}: {why}{HINTS.get(why, '')}")
            log.warning("Pulsar: %d messages not confirmed (%s); sending them again", len(failed), failed[0][1])
            time.sleep(0.1)
            for entry, _ in failed:
                self._send(entry)
