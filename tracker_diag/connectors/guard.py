"""How a connector talks to a tracker that may be slow, flaky or gone.

- :func:`kind_of` sorts an exception: ``"limited"`` (rate-limited: HTTP 429 after the
  client's own retries; the server is there and said so), ``"cut"`` (a response cut off
  mid-body, a connection reset: safe to retry a read), ``"down"`` (refused, timed out, 5xx
  after the client's own retries), or ``None`` (an answer: a 4xx, a bad request: not the network).
- :class:`Guard` is one backend's retry budget and circuit breaker, shared by every thread:
  a read cut off is retried a few times with backoff; after ``trip`` failures in a row of
  the server not answering at all every further call raises :class:`Unreachable` at once, so a dead server costs
  seconds, not hours, and the batch says what it did not attempt (the batch's own
  ``deadline`` bounds the whole run). A rate-limited read is retried with backoff for as long
  as the retry budget (``TRACKER_DIAG_RETRY_BUDGET``) allows, not a fixed number of times,
  and never opens the breaker.
- :func:`bounded` runs an SDK call that has no deadline of its own (W&B's retries inside
  the SDK) under one: past ``timeout`` it asks whether the server still answers at all, and
  gives up at once when it does not.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from tracker_diag.errors import Unreachable
from tracker_diag.text import redact

T = TypeVar("T")
# exception type names (requests, urllib3, http.client) and phrases of their messages
_CUT_TYPES = ("IncompleteRead", "ChunkedEncodingError", "ProtocolError", "ContentDecodingError", "RemoteDisconnected")
_CUT_WORDS = ("IncompleteRead", "Connection broken", "Connection reset", "Connection aborted", "RemoteDisconnected",
              "unexpected EOF", "connection reset by peer", "broken pipe")  # the last three: wandb-core (Go)
_DOWN_TYPES = ("ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "NewConnectionError", "MaxRetryError",
               "RetryError")
_DOWN_WORDS = ("Max retries exceeded", "Connection refused", "connection refused", "timed out", "Failed to establish",
               "error responses", "Name or service not known", "Temporary failure in name resolution",
               "did not respond", "no answer within")
_LIMITED_WORDS = ("too many 429 error responses", "Too Many Requests", "HTTP 429", "status code 429")


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]


def kind_of(exc: BaseException) -> str | None:
    """'cut', 'down' or None (see the module docstring), from the exception and its causes."""
    for e in _chain(exc):
        if isinstance(e, http.client.IncompleteRead | ConnectionResetError | BrokenPipeError
                      | http.client.RemoteDisconnected):
            return "cut"
        if isinstance(e, ConnectionRefusedError | TimeoutError):
            return "down"
    chain = list(_chain(exc))
    names = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain)
    if any(w in text for w in _LIMITED_WORDS):
        return "limited"
    if names & set(_CUT_TYPES) or any(w in text for w in _CUT_WORDS):
        return "cut"
    if names & set(_DOWN_TYPES) or any(w in text for w in _DOWN_WORDS):
        return "down"
    return None


class Guard:
    """One batch's circuit breaker and retry budget (thread-safe)."""

    def __init__(self, where: str, *, trip: int = 3, read_retries: int = 3, backoff: float = 0.5,
                 budget: float = 300.0, sleep: Callable[[float], None] = time.sleep):
        self.where, self.trip, self.read_retries, self.backoff, self._sleep = where, trip, read_retries, backoff, sleep
        self.budget = budget  # seconds a rate-limited read is retried
        self._lock = threading.Lock()
        self._failures = 0
        self.opened: str = ""  # why the breaker opened; "" while closed

    def check(self) -> None:
        """Raise Unreachable if no request should be made any more."""
        if self.opened:
            raise Unreachable(self.opened)

    def _open(self, why: str) -> None:
        with self._lock:
            if not self.opened:
                self.opened = redact(f"{self.where} stopped answering ({why})")

    def ok(self) -> None:
        with self._lock:
            self._failures = 0

    def failed(self, exc: BaseException) -> str | None:
        """Count a failure; returns its kind. Opens the breaker after ``trip`` failures in a row
        of the server not answering ("down"); a cut answer came from a live server and is retried."""
        kind = kind_of(exc)
        if kind != "down":
            return kind
        with self._lock:
            self._failures += 1
            tripped = self._failures >= self.trip
        if tripped:
            last = " ".join(str(exc).split())[:300]
            self._open(f"{self._failures} network failures in a row, the last: {type(exc).__name__}: {last}")
        return kind

    def call(self, fn: Callable[[], T], *, retry_cut: bool = True) -> T:
        """``fn()`` under the breaker; a cut-off or rate-limited response is retried (``retry_cut``:
        reads only; a write is re-planned by the batch instead)."""
        attempt, limited, started = 0, 0, time.monotonic()
        while True:
            self.check()
            try:
                out = fn()
            except Exception as exc:
                kind = self.failed(exc)
                if kind == "cut" and retry_cut and attempt < self.read_retries and not self.opened:
                    attempt += 1
                    self._sleep(self.backoff * 2 ** (attempt - 1))
                    continue
                if kind == "limited" and retry_cut and time.monotonic() - started < self.budget:
                    limited += 1
                    self._sleep(min(self.backoff * 2 ** limited, 30.0))
                    continue
                if self.opened:
                    raise Unreachable(self.opened) from exc
                raise
            self.ok()
            return out


def bounded(fn: Callable[[], T], timeout: float, alive: Callable[[], bool], budget: float) -> T:
    """``fn()`` in a daemon thread, waited for ``timeout`` seconds at a time: while it runs
    longer, ``alive()`` is asked whether the server still answers at all (a busy or
    rate-limiting server does; a dead one does not). TimeoutError ("down") when it does not,
    or once ``budget`` seconds have passed; the call itself is left to the SDK's own timeout
    (its thread cannot be stopped, and does not keep the process alive)."""
    box: dict = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread as it is
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name="tracker-diag-call").start()
    started = time.monotonic()
    while not done.wait(timeout):
        waited = time.monotonic() - started
        if waited >= budget or not alive():
            raise TimeoutError(f"no answer within {waited:.0f} s" + ("" if waited >= budget else
                                                                    " and the server accepts no connection"))
    if "error" in box:
        raise box["error"]
    return box["value"]
