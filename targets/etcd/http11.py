"""A minimal HTTP/1.1 client connection for JSON POSTs, on asyncio streams.

Why hand-written: the etcd client needs one thing, ``POST path`` with a
JSON body on a keep-alive connection, and must know *where* a failure
happened (before the request left: the operation surely did not happen;
after: its outcome is unknown). The standard library has no asyncio HTTP
client and the project's allowed dependencies include none, so this is the
smallest correct one: Content-Length and chunked responses, keep-alive,
no redirects, no TLS, no pipelining (one request at a time per connection).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

MAX_HEADER = 64 * 1024
MAX_BODY = 16 * 1024 * 1024


class HttpError(Exception):
    """A request failed. ``sent`` tells whether request bytes may have reached the server."""

    def __init__(self, message: str, *, sent: bool):
        super().__init__(message)
        self.sent = sent


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else {}
        except ValueError as exc:
            raise HttpError(f"response is not JSON: {exc}", sent=True) from None


class HttpConnection:
    """One keep-alive connection to ``host:port``; reconnects after any failure.

    Not safe for concurrent requests: one client process owns one connection
    (which is what a history's "process" is).
    """

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post_json(self, path: str, payload: Any, timeout: float) -> HttpResponse:
        """POST ``payload`` as JSON to ``path``; the whole exchange within ``timeout`` s.

        Raises :class:`HttpError` (``sent=False`` only if no byte of the request
        can have reached the server) on connection errors, timeouts and
        malformed responses; the connection is closed then.
        """
        body = json.dumps(payload, separators=(",", ":")).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        sent = False
        try:
            async with asyncio.timeout(timeout):
                if self._writer is None:
                    self._reader, self._writer = await asyncio.open_connection(
                        self.host, self.port, limit=MAX_HEADER
                    )
                sent = True
                self._writer.write(head + body)
                await self._writer.drain()
                return await self._read_response()
        except TimeoutError:
            self.close()
            raise HttpError(f"timed out after {timeout}s", sent=sent) from None
        except HttpError:
            self.close()
            raise
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError) as exc:
            self.close()
            raise HttpError(f"{type(exc).__name__}: {exc}", sent=sent) from None

    async def _read_response(self) -> HttpResponse:
        reader = self._reader
        assert reader is not None
        status_line = await reader.readuntil(b"\r\n")
        parts = status_line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError(f"bad status line {status_line[:80]!r}", sent=True)
        status = int(parts[1])
        headers: dict[str, str] = {}
        total = len(status_line)
        while True:
            line = await reader.readuntil(b"\r\n")
            total += len(line)
            if total > MAX_HEADER:
                raise HttpError("response headers too large", sent=True)
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked(reader)
        elif "content-length" in headers:
            n = int(headers["content-length"])
            if n > MAX_BODY:
                raise HttpError(f"response body of {n} bytes is too large", sent=True)
            body = await reader.readexactly(n)
        else:  # body until close
            body = await reader.read(MAX_BODY)
            self.close()
            return HttpResponse(status, body)
        if headers.get("connection", "").lower() == "close":
            self.close()
        return HttpResponse(status, body)

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        out = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return bytes(out)
            if len(out) + size > MAX_BODY:
                raise HttpError("chunked response body too large", sent=True)
            out += await reader.readexactly(size)
            await reader.readexactly(2)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
        self._reader = self._writer = None
