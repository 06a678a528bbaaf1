"""A loopback TCP server in front of (or instead of) a git server that answers HTTP by dripping: the
head of a response that never ends, one byte every `every_s`, for as long as the client stays.
For the hard time limits on git calls.

`GitDripServer()` drips on every connection. `GitDripServer(upstream=(host, port), only_post=True)`
relays connections to a real git server and drips only on `POST`s (a fetch's upload-pack), so a
ref listing works and the fetch after it hangs. `stop_dripping()` closes every dripping connection
and makes the server relay from then on (with an upstream; without one it closes new connections at
once). The upstreams of the tests are wsgiref servers (HTTP/1.0, one request per connection), so
looking at the first request of a connection is enough.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-result\r\nX-Drip: "


class GitDripServer:
    def __init__(self, upstream: tuple[str, int] | None = None, *, only_post: bool = False,
                 every_s: float = 0.2) -> None:
        self.upstream, self.only_post, self.every_s = upstream, only_post, every_s
        self.dripping = True
        self.dripped = 0  # connections answered by dripping
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(32)
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="drip-accept", daemon=True).start()

    def repo_url(self, owner: str, name: str) -> str:
        return f"{self.url}/{owner}/{name}.git"

    def stop_dripping(self) -> None:
        with self._lock:
            self.dripping = False
            dripping, self._open = self._open, set()
        for conn in dripping:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self.stop_dripping()
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> GitDripServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals ---------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="drip-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            first = self._request_head(conn)
            with self._lock:
                drip = self.dripping and (not self.only_post or first.startswith(b"POST "))
                if drip:
                    self._open.add(conn)
                    self.dripped += 1
            if drip:
                self._drip(conn)
            elif self.upstream is not None:
                self._relay(conn, first)

    @staticmethod
    def _request_head(conn: socket.socket) -> bytes:
        data = b""
        conn.settimeout(10)
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data

    def _drip(self, conn: socket.socket) -> None:
        try:
            for i in range(len(HEAD)):
                conn.sendall(HEAD[i:i + 1])
                time.sleep(self.every_s)
            while self.dripping:
                conn.sendall(b"a")
                time.sleep(self.every_s)
        except OSError:
            pass

    def _relay(self, conn: socket.socket, first: bytes) -> None:
        assert self.upstream is not None
        try:
            up = socket.create_connection(self.upstream, timeout=30)
        except OSError:
            return
        conn.settimeout(None)
        with up:
            up.settimeout(None)
            up.sendall(first)
            back = threading.Thread(target=_pipe, args=(up, conn), daemon=True)
            back.start()
            _pipe(conn, up)
            back.join(30)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)
