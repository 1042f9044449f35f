"""`InProcessHTTPClient`: stripe-python's HTTP client interface, answered by an `Emulator` in
the same process, without sockets. Whatever host the request names, the emulator answers."""

from __future__ import annotations

from typing import Any

import stripe

from .app import Emulator


class InProcessHTTPClient(stripe.HTTPClient):
    name = "stripe_emulator"

    def __init__(self, emulator: Emulator, **kwargs: Any):
        super().__init__(**kwargs)
        self.emulator = emulator

    def request(self, method: str, url: str, headers: Any, post_data: Any = None, **_: Any):
        status, response_headers, body = self.emulator.handle(method, url, dict(headers or {}), post_data)
        return body.decode("utf-8"), status, {k.lower(): v for k, v in response_headers.items()}

    def request_stream(self, method: str, url: str, headers: Any, post_data: Any = None, **_: Any):
        import io

        status, response_headers, body = self.emulator.handle(method, url, dict(headers or {}), post_data)
        return io.BytesIO(body), status, {k.lower(): v for k, v in response_headers.items()}

    async def request_async(self, method: str, url: str, headers: Any, post_data: Any = None, **kw: Any):
        return self.request(method, url, headers, post_data)

    async def request_stream_async(
        self, method: str, url: str, headers: Any, post_data: Any = None, **kw: Any
    ):
        return self.request_stream(method, url, headers, post_data)

    def close(self) -> None:
        pass

    async def close_async(self) -> None:
        pass
