"""shim's accept loop (``shim.connection.Acceptor``): a burst of new connections is accepted
at once even while the event loop is busy, on uvloop as ``shim serve`` runs it.

(libuv under uvloop accepts one connection per loop iteration: with ``loop.create_server`` and
the loop below, busy ~20 ms per iteration, about 30 of the 200 are accepted in the time
this test allows: 30 when measured.)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import uvloop

from shim.connection import Acceptor

BURST = 200


class Counting(asyncio.Protocol):
    made = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        Counting.made += 1


async def _accepted_while_busy() -> int:
    Counting.made = 0
    loop = asyncio.get_running_loop()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    acceptor = Acceptor(listener, Counting, backlog=1024)
    busy = True

    def hog() -> None:  # a loop with work to do: each iteration takes ~20 ms
        deadline = time.perf_counter() + 0.02
        while time.perf_counter() < deadline:
            pass
        if busy:
            loop.call_soon(hog)

    loop.call_soon(hog)
    clients = []
    for _ in range(BURST):  # the handshakes complete in the kernel, into the listen queue
        client = socket.socket()
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            client.connect(listener.getsockname())
        clients.append(client)
    await asyncio.sleep(0.6)
    busy = False
    made = Counting.made
    acceptor.close()
    listener.close()
    for client in clients:
        client.close()
    return made


def test_a_burst_is_accepted_at_once_on_a_busy_uvloop() -> None:
    assert uvloop.run(_accepted_while_busy()) == BURST
