"""An engine proxy that SIGKILLs its client at an exact engine call.

`KillProxy` listens on its own unix socket and relays whole HTTP requests to the real engine. It
numbers the client's *effects* (every request but GET/HEAD, leaving out the instance lease's own
volumes, whose heartbeat runs on a timer): with `kill_at=(n, "before")` the n-th effect is never
sent and the client process dies; with `(n, "after")` the engine carries it out and the client dies
as the answer arrives, before it can record anything. With no `kill_at` it only records the
effects (`log`), which is how a test learns the steps of an apply to choose its kill points.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import threading
from pathlib import Path

ENGINE_SOCKET = "/var/run/docker.sock"
_HEX_ID = re.compile(r"/containers/(?!create$)[^/?]+(/|$)")
_VERSION = re.compile(r"^/v\d+\.\d+")


def template(method: str, target: str) -> str:
    """`POST /containers/{id}/start`, `POST /containers/create?name=….new-`: one name per kind of step."""
    path, _, query = _VERSION.sub("", target).partition("?")
    path = _HEX_ID.sub(lambda m: "/containers/{id}" + m.group(1), path)
    if path.startswith("/volumes/") and path != "/volumes/create":
        kind = "snapshot" if path.endswith(".snapshot") else "configs" if path.endswith(".configs") else "other"
        path = "/volumes/{" + kind + "}"
    if path == "/containers/create":
        name = re.search(r"name=([^&]*)", query)
        path += "?name=" + ("{ws}.new-*" if name and ".new-" in name.group(1) else "{ws}" if name else "-(helper)")
    return f"{method} {path}"


class KillProxy:
    def __init__(self, path: Path, kill_at: tuple[int, str] | None = None, engine: str = ENGINE_SOCKET) -> None:
        self.path, self.kill_at, self.engine = path, kill_at, engine
        self.pid: int | None = None  # the client to kill
        self.log: list[str] = []  # effects, in order (templates)
        self.killed: str | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(32)
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}"

    def __enter__(self) -> KillProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() still waiting
        with contextlib.suppress(OSError):
            self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    # -- relay -------------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.engine)
            armed = threading.Event()  # kill the client when this connection's next answer arrives
            threading.Thread(target=self._requests, args=(client, upstream, armed), daemon=True).start()
            threading.Thread(target=self._answers, args=(upstream, client, armed), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket, armed: threading.Event) -> None:
        buffer = b""
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                buffer += data
                while True:
                    request, buffer = _split_request(buffer)
                    if request is None:
                        break
                    if not self._pass(request, armed):
                        self._kill()
                        return
                    upstream.sendall(request)
            if buffer:
                upstream.sendall(buffer)  # not HTTP we understand: passed on as is
        except OSError:
            pass
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_WR)

    def _answers(self, upstream: socket.socket, client: socket.socket, armed: threading.Event) -> None:
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                if armed.is_set():
                    self._kill()
                    return
                client.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)

    def _pass(self, request: bytes, armed: threading.Event) -> bool:
        """Count an effect; False when the client must die before it is sent."""
        head = request.split(b"\r\n", 1)[0].decode(errors="replace")
        method, _, rest = head.partition(" ")
        target = rest.rsplit(" ", 1)[0]
        if method in ("GET", "HEAD") or b"reconciler-lease-" in request:
            return not self.killed
        with self._lock:
            if self.killed:
                return False
            self.log.append(template(method, target))
            n = len(self.log)
            if self.kill_at is None or n != self.kill_at[0]:
                return True
            self.killed = f"{self.kill_at[1]} #{n} {self.log[-1]}"
            if self.kill_at[1] == "before":
                return False
            armed.set()
            return True

    def _kill(self) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


def _split_request(buffer: bytes) -> tuple[bytes | None, bytes]:
    """(one whole request, the rest) once the buffer holds one (Content-Length bodies; a chunked one
    is passed on up to the end of its headers, enough to name it)."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None, buffer
    headers = buffer[:end].decode(errors="replace").lower()
    length = re.search(r"\r\ncontent-length:\s*(\d+)", headers)
    size = end + 4 + (int(length.group(1)) if length else 0)
    if len(buffer) < size:
        return None, buffer
    return buffer[:size], buffer[size:]
