"""python-telegram-bot's requests over aiohttp, with JSON bodies.

PTB's default transport (httpx) costs about 5 ms of CPU per request here: its connection
pool scans every connection on each request, and the body is URL-encoded character by
character.  A bot paying for broadcasts may send 1,000 messages a second; at that rate the
transport would be the bottleneck long before Telegram is.  This one keeps a keep-alive pool
in aiohttp and sends the Bot API's JSON form of the parameters (which Telegram accepts for
every method).  Uploads (never made by this bot) go as multipart form data.

Long polling keeps PTB's own transport: one request at a time, nothing to gain.
"""

from __future__ import annotations

import json

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

_DEFAULT = BaseRequest.DEFAULT_NONE


class AiohttpRequest(BaseRequest):
    """A :class:`telegram.request.BaseRequest` on one ``aiohttp.ClientSession``."""

    def __init__(
        self,
        *,
        connections: int = 256,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        write_timeout: float = 15.0,
        pool_timeout: float = 10.0,
    ) -> None:
        self._connections = connections
        self._connect = connect_timeout
        self._read = read_timeout
        self._write = write_timeout
        self._pool = pool_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: float | object | None = _DEFAULT,
        write_timeout: float | object | None = _DEFAULT,
        connect_timeout: float | object | None = _DEFAULT,
        pool_timeout: float | object | None = _DEFAULT,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        read = self._read if read_timeout is _DEFAULT else read_timeout
        write = self._write if write_timeout is _DEFAULT else write_timeout
        connect = self._connect if connect_timeout is _DEFAULT else connect_timeout
        pool = self._pool if pool_timeout is _DEFAULT else pool_timeout
        # aiohttp has no write timeout of its own: the socket read covers the wait for the
        # answer, the total covers everything.
        timeouts = [t for t in (read, write, connect, pool) if isinstance(t, int | float)]
        timeout = aiohttp.ClientTimeout(
            total=sum(timeouts) if timeouts else None,
            connect=pool if isinstance(pool, int | float) else None,
            sock_connect=connect if isinstance(connect, int | float) else None,
            sock_read=read if isinstance(read, int | float) else None,
        )
        data: bytes | aiohttp.FormData | None = None
        headers = {}
        if request_data is not None and request_data.contains_files:
            form = aiohttp.FormData()
            for name, value in request_data.json_parameters.items():
                form.add_field(name, value)
            for name, (filename, content, mime) in request_data.multipart_data.items():
                form.add_field(name, content, filename=filename, content_type=mime)
            data = form
        elif request_data is not None:
            # The Bot API's JSON (PTB's json_payload would send every value as a string).
            data = json.dumps(request_data.parameters, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, timeout=timeout
            ) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc
