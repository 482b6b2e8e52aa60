"""A WebSocket server on loopback for tests of our WS clients: aiohttp in a thread of its own.
A subclass defines `async def _ws(self, request)` (the handler of PATH); `port` is known once
the constructor returns, `close()` stops it."""
from __future__ import annotations

import asyncio
import threading

from aiohttp import web


class ThreadedWsServer:
    PATH = "/ws-api/v3"

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    async def _ws(self, request):
        raise NotImplementedError

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get(self.PATH, self._ws)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
