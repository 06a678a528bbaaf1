"""A loopback TCP server that answers each connection the way a test tells it: a whole answer, or a
prefix followed by one byte every `every_s` for as long as the client stays (a server that drips).

`DripServer(respond)`: `respond(head)` gets the request head as received and returns
`(prefix, drip)`; with `drip` the prefix is sent and then one more byte every `every_s`, forever,
else the prefix is the whole answer and the connection is closed. `requests` keeps every head.
`HEADER_DRIP` drips inside a response header, `BODY_DRIP` inside a body announced as 60,000 bytes
(under every client's read cap, and hours at that pace).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

HEADER_DRIP = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Drip: "
BODY_DRIP = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n"


class DripServer:
    def __init__(self, respond: Callable[[bytes], tuple[bytes, bool]], every_s: float = 0.2) -> None:
        self.respond, self.every_s = respond, every_s
        self.requests: list[bytes] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(32)
        self._sock.settimeout(0.1)  # the accept loop sees `close()` (a blocked accept would outlive it)
        self.port = int(self._sock.getsockname()[1])
        self.host = f"127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, name="drip-accept", daemon=True)
        self._acceptor.start()

    def __enter__(self) -> DripServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._acceptor.join(5)  # before the close: no connection is accepted, or fd reused, after it
        with contextlib.suppress(OSError):
            self._sock.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), name="drip-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            conn.settimeout(10)
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    head += chunk
            with self._lock:
                self.requests.append(head)
            prefix, drip = self.respond(head)
            try:
                conn.sendall(prefix)
                while drip and not self._stop.is_set():
                    time.sleep(self.every_s)
                    conn.sendall(b" ")
            except OSError:
                pass
            with self._lock:
                self._conns.discard(conn)
