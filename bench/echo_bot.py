"""A bare python-telegram-bot echo bot: the baseline for the hit-path benchmark.

No gate, no cache, no Redis: each update is echoed back with sendMessage. Updates arrive by
webhook POSTs to an aiohttp server that awaits `process_update`, the same way our bot takes
them, so the comparison isolates the transport and our per-message work.

    python bench/echo_bot.py --api http://127.0.0.1:PORT --port 8081 --transport default|aiohttp
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters
from webhook_host import serve

from bot.platforms.telegram.transport import AiohttpRequest


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is not None and message.text is not None:
        await context.bot.send_message(message.chat.id, message.text)


async def main(api: str, token: str, port: int, transport: str) -> None:
    builder = ApplicationBuilder().token(token).base_url(f"{api}/bot").updater(None).concurrent_updates(True)
    if transport == "aiohttp":
        builder = builder.request(AiohttpRequest())
    app: Application[Any, Any, Any, Any, Any, Any] = builder.build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    await serve(app, port)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--api", required=True)
    parser.add_argument("--token", default="1:bench")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--transport", choices=["default", "aiohttp"], default="default")
    args = parser.parse_args()
    asyncio.run(main(args.api, args.token, args.port, args.transport))
