"""Serving the page with uvicorn on a socket bound here first, so that a port in use is one clear error and port 0
picks a free one; `serving` runs the server in a thread for tests, benchmarks and `explore --check`."""

from __future__ import annotations

import errno
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from ..errors import LatentspectraError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
START_SECONDS = 30.0  # how long `serving` waits for the server to start before it gives up


class ServeError(LatentspectraError, OSError):
    """The server cannot listen where it was asked to (a port in use, an address this machine does not have)."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port).

    Raises:
        ServeError: the port is in use, or the address cannot be bound, naming both.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as error:
        raise ServeError(f"--host {host}: not an address of this machine ({error.strerror})") from None
    # IPPROTO_TCP named, not 0: asyncio turns Nagle's algorithm off only on sockets whose proto says TCP, and with it
    # on, every answer on a kept-alive connection waits 40 ms for the client's delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as error:
        sock.close()
        reason = (
            "in use by another program; choose another with --port"
            if error.errno == errno.EADDRINUSE
            else error.strerror
        )
        raise ServeError(f"--port {port}: cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def address(sock: socket.socket) -> str:
    """The page's URL on a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def server(app: FastAPI) -> uvicorn.Server:
    """A uvicorn server for ``app``: warnings and errors logged (through the logging configuration there is, which
    uvicorn leaves alone: log_config=None), no access log, no lifespan events (none used)."""
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", log_config=None, access_log=False, lifespan="off"))


def serve(app: FastAPI, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C (uvicorn handles the signal and shuts down cleanly)."""
    server(app).run(sockets=[sock])


@contextmanager
def serving(app: FastAPI, sock: socket.socket) -> Iterator[str]:
    """Serve ``app`` on ``sock`` in a thread; yields the page's URL once the server answers, and stops the server
    (and closes ``sock``) on leaving.

    Raises:
        ServeError: the server did not start within `START_SECONDS`.
    """
    running = server(app)
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, name="explore-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_SECONDS
        while not running.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise ServeError(f"the server on {address(sock)} did not start")
            time.sleep(0.02)
        yield address(sock)
    finally:
        running.should_exit = True
        thread.join(timeout=START_SECONDS)
        sock.close()


def check(url: str) -> str:
    """Fetch the page and GET /api/info from a running server (loopback); one line saying what answered.

    Raises:
        ServeError: either does not answer as expected.
    """
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    try:
        with opener.open(url, timeout=10) as page:
            html = page.read().decode()
        with opener.open(url + "api/info", timeout=10) as answer:
            info = json.loads(answer.read())
    except (OSError, ValueError) as error:
        raise ServeError(f"{url}: the server did not answer as expected ({error})") from None
    if "latentspectra explore" not in html or "latent_dim" not in info:
        raise ServeError(f"{url}: the page or /api/info is not what the server should send")
    return f"checked {url}: the page and /api/info answered (M = {info['latent_dim']}, {len(info['methods'])} methods)"
