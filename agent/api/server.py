"""The HTTP server's stack and its listening socket, shared by `reloader serve` and its serving processes."""

from __future__ import annotations

import importlib
import socket

from agent.domain.errors import ReloaderError


def server_stack() -> tuple[str, str]:
    """uvicorn's HTTP parser and event loop: httptools and uvloop (`uvicorn[standard]`) where they import,
    else its pure-Python h11 and asyncio (uvloop has no Windows build, for one). As uvicorn's "auto" picks,
    named here so the log says which."""
    chosen = []
    for fast, fallback in (("httptools", "h11"), ("uvloop", "asyncio")):
        try:
            importlib.import_module(fast)
            chosen.append(fast)
        except ImportError:
            chosen.append(fallback)
    return chosen[0], chosen[1]


def listening_socket(host: str, port: int) -> socket.socket:
    """The API's listening socket, with TCP_NODELAY, which the connections it accepts inherit.

    asyncio sets TCP_NODELAY only on sockets whose protocol number is IPPROTO_TCP, and
    `socket.create_server` makes them with 0: without this, Nagle's algorithm holds back the last
    segment of each answer until the client's delayed ACK, 40 ms, on every keep-alive request but the first.
    """
    listening = socket.create_server((host, port), reuse_port=False, backlog=2048)
    listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return listening


def shared_port(host: str, port: int) -> socket.socket:
    """Hold `port` for the serving processes, which each bind it with SO_REUSEPORT (gRPC's server cannot
    adopt a socket it is handed): a bound socket that never listens takes no connection, but a process
    of anyone else cannot take the port, and a port already taken fails here, at start."""
    held = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        held.bind((host, port))
    except OSError as error:
        held.close()
        raise ReloaderError(f"cannot listen for gRPC on {host}:{port}: {error.strerror}") from None
    return held
