"""The bot's own HTTP server: health, and the Telegram webhook when that mode is on."""

from __future__ import annotations

from aiohttp import web


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def start(host: str, port: int, routes: list[web.RouteDef]) -> web.AppRunner:
    app = web.Application(client_max_size=1024 * 1024)  # an update is a few KiB; refuse floods
    app.add_routes([web.get("/healthz", healthz), *routes])
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    return runner
