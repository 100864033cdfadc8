"""The "before" of the story: a bare python-telegram-bot bot that calls the upstream directly
in its handler — no cache, no queue, no limits, no retries. Webhook updates arrive on an
aiohttp server that awaits `process_update`, like our bot. Used by bench/load.py.

    python bench/baseline_bot.py --api URL --port P --fx URL --wiki URL
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any
from urllib.parse import quote

import httpx
from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters
from webhook_host import serve


async def main(api: str, token: str, port: int, fx: str, wiki: str) -> None:
    client = httpx.AsyncClient(timeout=10)

    async def lookup(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or message.text is None:
            return
        command, _, args = message.text.partition(" ")
        try:
            if command == "/fx":
                amount, src, dst = args.split()
                data = (
                    await client.get(f"{fx}/latest", params={"amount": amount, "from": src, "to": dst})
                ).json()
                text = f"{amount} {src} = {data['rates'][dst]} {dst}"
            elif command == "/wiki":
                data = (await client.get(f"{wiki}/page/summary/{quote(args.replace(' ', '_'))}")).json()
                text = str(data.get("extract") or data.get("title") or "not found")
            else:
                text = "unknown command"
        except Exception as exc:  # the usual hand-rolled bot: whatever broke, say so
            text = f"error: {type(exc).__name__}"
        await context.bot.send_message(message.chat.id, text)

    app: Application[Any, Any, Any, Any, Any, Any] = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{api}/bot")
        .updater(None)
        .concurrent_updates(True)
        .build()
    )
    app.add_handler(MessageHandler(filters.TEXT, lookup))
    try:
        await serve(app, port, set_webhook=True)
    finally:
        await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("--api", "--fx", "--wiki"):
        parser.add_argument(name, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--port", type=int, required=True)
    a = parser.parse_args()
    asyncio.run(main(a.api, a.token, a.port, a.fx, a.wiki))
