"""A loopback HTTP fault proxy in front of a real server (the `mlflow server` of the tests).

    with FaultProxy("127.0.0.1", upstream_port) as proxy:
        proxy.mode = "cut"          # or ok, 429, 503, slow, dead, fail:<path part>
        proxy.rate = 0.3            # the share of requests the fault hits
        ... MlflowClient(proxy.url) ...

Modes (each request draws from a seeded generator, so a run is reproducible):
- ``ok``: forwarded as is;
- ``429`` / ``503``: answered with that status and ``Retry-After: 1``, not forwarded;
- ``slow``: forwarded after a delay of ``delay`` seconds;
- ``cut``: forwarded, then the answer's body is cut in half and the connection closed
  (Content-Length still says the whole), as a proxy or a server crash cuts a response;
- ``dead``: the listening socket is closed: connections are refused, as with a killed server;
- ``fail:<text>``: requests whose path contains ``<text>`` get a 500, no Retry-After (e.g. ``fail:delete-tag``).

``counts`` tells how many requests each mode hit, ``log`` the method and path of each one.
Plain sockets and http.client: no dependency, one thread per connection.
"""

from __future__ import annotations

import http.client
import random
import socket
import threading
import time
from typing import Self


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, seed: int = 0):
        self.upstream = (upstream_host, upstream_port)
        self.mode, self.rate, self.delay = "ok", 1.0, 2.0
        self.counts: dict[str, int] = {}
        self.log: list[tuple[str, str, str]] = []  # (method, path, what happened)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.port = 0
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._listen()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._close()

    # -- the listening socket ----------------------------------------------------------------

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        sock.listen(64)
        self._sock = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._sock = None

    def kill(self) -> None:
        """Refuse every connection from now on (the server died)."""
        self.mode = "dead"
        self._close()

    def revive(self) -> None:
        """Listen again on the same port (the server came back)."""
        self.mode = "ok"
        if self._sock is None:
            self._listen()

    def _accept(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    # -- one connection ------------------------------------------------------------------------

    def _hit(self) -> str:
        with self._lock:
            mode = self.mode if self._rng.random() < self.rate else "ok"
            self.counts[mode] = self.counts.get(mode, 0) + 1
        return mode

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(60)
        reader = conn.makefile("rb")
        try:
            while True:
                request = self._read_request(reader)
                if request is None:
                    return
                method, path, headers, body = request
                if not self._answer(conn, method, path, headers, body):
                    return
        except OSError:
            return
        finally:
            reader.close()
            conn.close()

    @staticmethod
    def _read_request(reader):
        line = reader.readline()
        if not line:
            return None
        method, path, _ = line.decode("latin-1").split(" ", 2)
        headers = {}
        while True:
            h = reader.readline().decode("latin-1")
            if h in ("\r\n", "\n", ""):
                break
            k, _, v = h.partition(":")
            headers[k.strip()] = v.strip()
        n = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0") or 0)
        body = reader.read(n) if n else b""
        return method, path, headers, body

    def _answer(self, conn, method, path, headers, body) -> bool:
        """Answer one request; False when the connection is to be closed."""
        mode = self._hit()
        if mode.startswith("fail:") and mode[5:] not in path:
            mode = "ok"
        self.log.append((method, path, mode))
        if mode in ("429", "503") or mode.startswith("fail:"):
            status = 500 if mode.startswith("fail:") else int(mode)
            text = b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "fault proxy"}'
            retry = "Retry-After: 1\r\n" if status != 500 else ""
            conn.sendall(f"HTTP/1.1 {status} Fault\r\nContent-Type: application/json\r\n{retry}"
                         f"Content-Length: {len(text)}\r\n\r\n".encode() + text)
            return True
        if mode == "dead":
            return False
        if mode == "slow":
            time.sleep(self.delay)
        up = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            fwd = {k: v for k, v in headers.items() if k.lower() not in ("connection", "keep-alive")}
            up.request(method, path, body=body or None, headers=fwd)
            resp = up.getresponse()
            data = resp.read()
            head = [f"HTTP/1.1 {resp.status} {resp.reason}"]
            head += [f"{k}: {v}" for k, v in resp.getheaders()
                     if k.lower() not in ("content-length", "transfer-encoding", "connection")]
            head += [f"Content-Length: {len(data)}", "", ""]
            if mode == "cut":  # the headers and half the body, then the connection drops
                conn.sendall("\r\n".join(head).encode("latin-1") + data[: len(data) // 2])
                return False
            conn.sendall("\r\n".join(head).encode("latin-1") + data)
            return True
        finally:
            up.close()
