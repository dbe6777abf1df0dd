"""Delivering within a deadline: HTTP POSTs and SMTP sessions that end when their time is up.

The libraries' own timeouts are per socket operation, so a receiver that answers one byte at a time
would hold a delivery for as long as it likes. :func:`within_deadline` runs the delivery in a worker
thread and, when the deadline passes, shuts its connections down, which ends the worker at once.
Messages name the receiver by ``scheme://host:port`` only: a webhook URL's path carries its tokens.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import smtplib
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlparse

from passion_tasks.errors import PassionError

USER_AGENT = "passion-alerts"
#: The deadline of one delivery, in seconds: connect, send and the whole answer.
TIMEOUT_S = 10.0
#: How long a delivery's worker may take to stop once its connections are shut down (milliseconds, as a
#: rule; only a DNS lookup, which nothing can interrupt, takes longer, and it then opens no connection).
WIND_DOWN_S = 1.0


class DeliveryError(PassionError):
    """A channel could not deliver an alert."""


def endpoint(url: str) -> str:
    """``scheme://host[:port]`` of a URL: enough to say where, without the path's tokens."""
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")


T = TypeVar("T")


class Deadline:
    """A delivery's deadline and the connections it opened, so that the caller can cut them.

    The delivery opens each connection through :meth:`connect`, which keeps a duplicate of the socket's
    descriptor before connecting: shutting the duplicate down ends the connection under the delivery's
    own socket, even once TLS has wrapped it in a new object, and interrupts a connect, a send or a read
    in progress. The duplicates are closed by the caller only after the worker has stopped, so their
    numbers cannot be reused under it.
    """

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.passed = False
        self._lock = threading.Lock()
        self._handles: list[socket.socket] = []

    def connect(
        self, address: tuple[str, int], timeout: Any = None, source_address: Any = None
    ) -> socket.socket:
        """``socket.create_connection``, with each socket watched before it connects.

        The per-operation ``timeout`` the library passes is replaced by the whole deadline: a backstop,
        since the connection is cut at the deadline anyway.
        """
        host, port = address
        failure: OSError = OSError(f"no address found for {host}")
        for family, kind, proto, _, sockaddr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
            sock = socket.socket(family, kind, proto)
            try:
                self._watch(sock)
                sock.settimeout(self.timeout_s)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as error:
                sock.close()
                failure = error
        raise failure

    def _watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self.passed:
                raise TimeoutError(f"the deadline of {self.timeout_s:g} s has passed")
            self._handles.append(sock.dup())

    def cut(self) -> None:
        """The deadline has passed: shut every connection down (the worker's calls fail at once)."""
        with self._lock:
            self.passed = True
            for handle in self._handles:
                with contextlib.suppress(OSError):
                    handle.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            handles, self._handles = self._handles, []
        for handle in handles:
            handle.close()


def within_deadline(what: str, timeout_s: float, deliver: Callable[[Deadline], T]) -> T:
    """``deliver(deadline)``'s result, or a DeliveryError naming ``what`` if it takes over ``timeout_s``.

    ``deliver`` runs in a worker thread and opens its connections through ``deadline.connect``; at the
    deadline (or if the caller is interrupted, e.g. by Airflow's ``execution_timeout``) they are shut
    down, the worker is given :data:`WIND_DOWN_S` to stop, and every socket is closed: nothing is left
    running. Its own exceptions are raised here.
    """
    deadline = Deadline(timeout_s)
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = deliver(deadline)
        except BaseException as error:  # raised in the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=work, name=f"passion-delivery {what}", daemon=True)
    worker.start()
    try:
        worker.join(timeout_s)
    finally:
        if worker.is_alive():
            deadline.cut()
            worker.join(WIND_DOWN_S)
        deadline.close()
    if "result" in outcome:  # complete, even if just as the deadline passed
        return outcome["result"]
    if deadline.passed:
        raise DeliveryError(f"{what} gave no complete answer within {timeout_s:g} s") from None
    raise outcome["error"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would follow a 301/302 of a POST as a GET without the body: a lost alert that looks sent.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _connection(
    connection_class: type[http.client.HTTPConnection], deadline: Deadline, host: str, **kwargs: Any
) -> http.client.HTTPConnection:
    """An ``http.client`` connection that connects through ``deadline``."""
    connection = connection_class(host, **kwargs)
    connection._create_connection = deadline.connect
    return connection


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: Deadline):
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_connection, http.client.HTTPConnection, self.deadline), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: Deadline):
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        # The default SSL context, as urllib's own handler (without a context of its own) uses.
        return self.do_open(functools.partial(_connection, http.client.HTTPSConnection, self.deadline), req)


def post_json(channel: str, url: str, body: bytes, timeout_s: float, headers: dict[str, str]) -> int:
    """POST ``body`` as JSON and return the HTTP status; a non-2xx answer (a redirect too), a refused
    connection or no complete answer within ``timeout_s`` is a DeliveryError naming ``channel`` and the
    URL's ``scheme://host:port`` only.

    urllib, as before, for its handling of answers and of the ``*_proxy`` environment variables; only its
    connections are made through the delivery's :class:`Deadline`.
    """
    request = urllib.request.Request(
        url,
        data=body,
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
        method="POST",
    )
    where = endpoint(url)
    return within_deadline(
        f"{channel}: {where}", timeout_s, lambda deadline: _post(channel, where, request, deadline)
    )


def _post(channel: str, where: str, request: urllib.request.Request, deadline: Deadline) -> int:
    opener = urllib.request.build_opener(_NoRedirect, _HTTPHandler(deadline), _HTTPSHandler(deadline))
    try:
        with opener.open(request, timeout=deadline.timeout_s) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        error.close()
        raise DeliveryError(f"{channel}: {where} answered HTTP {error.code} {error.reason}") from None
    except OSError as error:
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        raise DeliveryError(f"{channel}: could not reach {where}: {reason}") from None
    except http.client.HTTPException as error:
        raise DeliveryError(f"{channel}: {where} sent a broken answer: {type(error).__name__}") from None


class DeadlineSMTP(smtplib.SMTP):
    """smtplib's client, connecting through a delivery's :class:`Deadline` (``_get_socket`` is the hook
    smtplib's own ``SMTP_SSL`` overrides)."""

    def __init__(self, host: str, port: int, deadline: Deadline):
        self.deadline = deadline
        super().__init__(host, port, timeout=deadline.timeout_s)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return self.deadline.connect((host, port), timeout, self.source_address)
