"""The bot's own HTTP server: /healthz, /readyz, /metrics, and the Telegram webhook."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

Check = Callable[[], Awaitable[str]]  # "" when fine, else the reason


async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers. Orchestrators restart it when this fails."""
    return web.json_response({"status": "ok"})


def readyz(checks: dict[str, Check]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        """Ready: Redis and the broker answer and every adapter is connected; 503 with the
        reasons otherwise (a load balancer stops sending traffic)."""
        names = list(checks)
        results = await asyncio.gather(*(_run(checks[n]) for n in names))
        problems = {name: reason for name, reason in zip(names, results, strict=True) if reason}
        status = 503 if problems else 200
        body = {
            "status": "not ready" if problems else "ready",
            "checks": {n: results[i] or "ok" for i, n in enumerate(names)},
        }
        return web.json_response(body, status=status)

    return handler


async def _run(check: Check) -> str:
    try:
        return await asyncio.wait_for(check(), 3)
    except Exception as exc:  # a check that crashes or hangs is a failed check
        return f"{type(exc).__name__}"


async def metrics(request: web.Request) -> web.Response:
    body = await asyncio.to_thread(generate_latest, REGISTRY)  # gauges read Redis: off the loop
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def start(
    host: str, port: int, routes: list[web.RouteDef], checks: dict[str, Check] | None = None
) -> web.AppRunner:
    app = web.Application(client_max_size=1024 * 1024)  # an update is a few KiB; refuse floods
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/readyz", readyz(checks or {})),
            web.get("/metrics", metrics),
            *routes,
        ]
    )
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    return runner
