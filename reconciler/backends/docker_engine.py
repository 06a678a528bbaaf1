"""The edge between the docker SDK and the reconciler: error mapping, image pulls, one-shot helpers.

Every docker/requests exception is turned into the reconciler's error tree here (httpx-style:
foreign errors mapped at the edge), so the rest of the backend reads in domain terms:

- unreachable engine (connection refused/reset, socket missing), timeouts, HTTP 5xx, and the SDK
  failing to reach the engine while it starts   -> TransientBackendError (retried with backoff)
- everything else (4xx, bad image, name taken)   -> BackendError, naming the workspace and a fix

Messages pass through a `Scrubber` holding the secret values of the action at hand, so an engine
message that echoes an env value can never leak it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import docker
import docker.errors
import requests

from reconciler.errors import BackendError, TransientBackendError

log = logging.getLogger(__name__)

ENGINE_HINT = "is dockerd running and DOCKER_HOST right? Nothing was torn down; the next run retries"
_REASONS = ("No such file or directory", "Connection refused", "Permission denied", "Connection reset",
            "Read timed out", "timed out", "Connection aborted")


class Scrubber:
    """Replaces secret values in text. Empty scrubber when an action carries no secrets."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._values = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, "***")
        return text


def status_of(exc: BaseException) -> int | None:
    if isinstance(exc, docker.errors.APIError):
        return exc.status_code
    return None


def explanation(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    return str(exc) or type(exc).__name__


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, docker.errors.NotFound) or status_of(exc) == 404


def is_removal_in_progress(exc: BaseException) -> bool:
    text = explanation(exc).lower()
    return status_of(exc) == 409 and "removal" in text and "in progress" in text


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout | ConnectionError):
        return True
    code = status_of(exc)
    if code is not None:
        return code >= 500 or code == 429
    if isinstance(exc, docker.errors.DockerException):
        # raised by the SDK itself when it cannot even ask the engine for its API version
        text = str(exc)
        return "Error while fetching server API version" in text or "Connection" in text
    return isinstance(exc, OSError)


def translate(exc: BaseException, what: str, workspace_id: str | None, scrub: Scrubber) -> BackendError:
    subject = f"workspace {workspace_id}" if workspace_id else "the reconciler"
    detail = scrub(explanation(exc))
    if is_transient(exc) and status_of(exc) is None:  # no answer at all: say so in a few words
        reason = next((r for r in _REASONS if r.lower() in detail.lower()), type(exc).__name__)
        during = what if what.startswith("while") else f"while {what}"
        target = f" {subject}" if workspace_id else ""
        return TransientBackendError(f"docker engine unreachable ({reason}) {during}{target}; {ENGINE_HINT}")
    if is_transient(exc):
        return TransientBackendError(f"docker: {what} for {subject} failed: {detail}; {ENGINE_HINT}")
    return BackendError(f"docker: {what} for {subject} failed: {detail}; fix the cause above and re-run apply")


FOREIGN_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)


@contextlib.contextmanager
def mapped(what: str, workspace_id: str | None = None, scrub: Scrubber | None = None) -> Iterator[None]:
    """Run a block of engine calls; foreign failures leave it as BackendError/TransientBackendError."""
    try:
        yield
    except BackendError:
        raise
    except FOREIGN_ERRORS as exc:
        raise translate(exc, what, workspace_id, scrub or Scrubber()) from None


def ensure_image(
    api: docker.APIClient,
    ref: str,
    *,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Pull `ref` unless the engine already has it (a digest is never re-pulled; moving tags are
    resolved to digests before the plan, so a present tag is trusted). The pull stream is read
    until done; `timeout` bounds the time between its first and last progress message."""
    try:
        api.inspect_image(ref)
        return
    except docker.errors.NotFound:
        pass
    log.info("pulling image", extra={"image": ref})
    deadline = clock() + timeout
    for message in api.pull(ref, stream=True, decode=True):
        if isinstance(message, Mapping) and message.get("error"):
            text = str(message.get("error"))
            transient = any(s in text.lower() for s in ("connection refused", "timeout", "i/o timeout", "eof"))
            cls = TransientBackendError if transient else BackendError
            raise cls(f"docker: pulling image {ref} failed: {text}; check the reference in images.yaml")
        if clock() > deadline:
            raise TransientBackendError(f"docker: pulling image {ref} took longer than {timeout:.0f}s")
    try:
        api.inspect_image(ref)
    except docker.errors.NotFound:
        raise BackendError(f"docker: image {ref} is still missing after a pull; check images.yaml") from None


def run_helper(
    api: docker.APIClient,
    *,
    image: str,
    script: str,
    binds: Mapping[str, str],
    env: Mapping[str, str],
    labels: Mapping[str, str],
    archive: bytes | None,
    timeout: float,
    what: str,
) -> None:
    """Run `sh -c script` once in a throw-away container of `image` (so runtime images must ship
    /bin/sh), with `archive` extracted at /configs before it starts; raise when it exits non-zero."""
    host_config = api.create_host_config(
        binds={src: {"bind": dst, "mode": "rw"} for src, dst in binds.items()}, network_mode="none"
    )
    created: dict[str, Any] = api.create_container(
        image,
        entrypoint=["/bin/sh", "-c", script],
        command=[],
        environment=dict(env),
        labels=dict(labels),
        user="0",
        host_config=host_config,
    )
    cid = created["Id"]
    try:
        if archive is not None:
            api.put_archive(cid, "/configs", archive)
        api.start(cid)
        code = api.wait(cid, timeout=timeout).get("StatusCode", -1)
        if code != 0:
            tail = api.logs(cid, stdout=True, stderr=True, tail=20).decode(errors="replace").strip()
            raise BackendError(
                f"docker: {what} failed (helper exited {code}): {tail or 'no output'}; "
                "the runtime image must provide /bin/sh with cp, mv, rm, mkdir"
            )
    finally:
        with contextlib.suppress(*FOREIGN_ERRORS):
            api.remove_container(cid, force=True, v=False)
