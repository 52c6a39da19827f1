"""The API's socket: every connection it accepts has TCP_NODELAY, so keep-alive answers are not held back."""

from __future__ import annotations

import socket

from agent.api.server import listening_socket


def test_accepted_connections_have_tcp_nodelay() -> None:
    # GIVEN the socket `reloader serve` listens on
    with listening_socket("127.0.0.1", 0) as listening:
        # WHEN a client connects
        client = socket.create_connection(listening.getsockname()[:2])
        accepted, _ = listening.accept()
        with client, accepted:
            # THEN the accepted connection sends small segments at once (asyncio would not set it:
            # the socket's protocol number is 0, not IPPROTO_TCP)
            assert accepted.proto != socket.IPPROTO_TCP
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
