"""An aiohttp-backed transport for python-telegram-bot.

PTB's default transport (httpx/httpcore) collapses under concurrency: measured on 2 cores, a
bare echo bot drops from ~640 msgs/s to ~200 with 8+ updates in flight, most CPU spent in
httpcore's connection-pool bookkeeping. One shared `aiohttp.ClientSession` holds up (~1,300
msgs/s). PTB supports exactly this through `telegram.request.BaseRequest`; no maintained
package ships one, hence this small class. Errors never carry the URL: it holds the token.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _pick(value: Any, default: float | None) -> float | None:
    return default if isinstance(value, DefaultValue) else value


class AiohttpRequest(BaseRequest):
    def __init__(
        self,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        write_timeout: float = 10.0,
        pool_size: int = 100,
    ):
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._pool_size = pool_size
        self._form_timeout = aiohttp.ClientTimeout(total=connect_timeout + read_timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size, ttl_dns_cache=300),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def post_form(self, url: str, params: dict[str, str]) -> int:
        """POST form fields and return the status: the cheap path for fire-and-forget calls."""
        if self._session is None or self._session.closed:
            raise RuntimeError("AiohttpRequest is not initialized")
        # Encoded here rather than handed over as a dict: aiohttp wraps a dict in FormData,
        # which builds a multipart writer (and a uuid4 boundary) even for a urlencoded body —
        # ~5% of a cache hit's CPU (py-spy, bench/telegram_hits.py).
        body = urlencode(params).encode()
        try:
            async with self._session.post(
                url, data=body, headers=FORM, timeout=self._form_timeout
            ) as response:
                await response.read()
                return response.status
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}") from exc

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("AiohttpRequest is not initialized")
        read = _pick(read_timeout, self._read_timeout)
        connect = _pick(connect_timeout, self._connect_timeout)
        pool = _pick(pool_timeout, 1.0)
        write = _pick(write_timeout, self._write_timeout)
        # aiohttp has no separate write timeout: bound the whole exchange by the sum.
        total = sum(t for t in (read, connect, pool, write) if t is not None) or None
        timeout = aiohttp.ClientTimeout(total=total, sock_connect=connect, sock_read=read)

        data: Any = None
        headers = None
        if request_data is not None:
            files = request_data.multipart_data
            if files:
                form = aiohttp.FormData()
                for name, value in request_data.json_parameters.items():
                    form.add_field(name, value)
                for name, (filename, content, mimetype) in files.items():
                    form.add_field(name, content, filename=filename, content_type=mimetype)
                data = form
            elif request_data.json_parameters:
                # form-urlencoded, as the Bot API takes it (encoded here: see post_form)
                data, headers = urlencode(request_data.json_parameters).encode(), FORM
        try:
            request = self._session.request(method, url, data=data, headers=headers, timeout=timeout)
            async with request as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}") from exc
