"""The local channel between the agent and one serving process (`processes_per_replica`).

A private socket pair made by the agent before it starts the process, which inherits its end: only
the two processes hold it, so there is no address to guard and nothing to authenticate. Messages are
the plain values of agent.domain.processes, pickled and framed by multiprocessing.connection (the
standard library's own process channel). Any number of threads may send (one at a time, under a
lock); one thread per side receives. A closed or broken channel is `ChannelClosed`, the only error
this module lets out: the other process is gone.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from multiprocessing.connection import Connection
from typing import Any

from agent.domain.errors import ReloaderError


class ChannelClosed(ReloaderError):
    """The process at the other end exited, or closed its end."""


class Channel:
    def __init__(self, fd: int) -> None:
        self._connection = Connection(fd)  # owns the descriptor from now on
        self._sending = threading.Lock()

    @classmethod
    def pair(cls) -> tuple[Channel, int]:
        """The agent's end, and the descriptor a child process inherits (the caller closes it once passed)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        child = theirs.detach()
        os.set_inheritable(child, True)
        return cls(ours.detach()), child

    def send(self, message: Any) -> None:
        try:
            with self._sending:
                self._connection.send(message)
        except (OSError, ValueError) as error:  # ValueError: already closed on this side
            raise ChannelClosed(f"the local channel is closed: {error}") from None

    def receive(self) -> Any:
        try:
            return self._connection.recv()
        except (EOFError, OSError, ValueError) as error:
            raise ChannelClosed(f"the local channel is closed: {error or 'end of file'}") from None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._connection.close()
