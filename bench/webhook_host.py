"""Host a python-telegram-bot Application the way our bot takes updates: an aiohttp server
whose webhook handler awaits `process_update`. Shared by the benchmark's comparison bots."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from aiohttp import web
from telegram import Update
from telegram.ext import Application


async def serve(app: Application[Any, Any, Any, Any, Any, Any], port: int, set_webhook: bool = False) -> None:
    """Start `app`, serve /telegram/webhook and /healthz on 127.0.0.1:`port` until SIGTERM."""
    await app.initialize()
    await app.start()

    async def webhook(request: web.Request) -> web.Response:
        update = Update.de_json(await request.json(), app.bot)
        if update is None:
            return web.Response(status=400)
        await app.process_update(update)
        return web.Response(text="ok")

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    server = web.Application()
    server.add_routes([web.post("/telegram/webhook", webhook), web.get("/healthz", healthz)])
    runner = web.AppRunner(server, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    if set_webhook:
        await app.bot.set_webhook(f"http://127.0.0.1:{port}/telegram/webhook")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()
    await app.stop()
    await app.shutdown()
