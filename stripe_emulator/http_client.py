"""`InProcessHTTPClient`: stripe-python's HTTP client interface, answered by an `Emulator` in
the same process, without sockets. Whatever host the request names, the emulator answers.

`timeout` (seconds, stripe-python's default 80) is what an injected hang is measured against: a
hang that reaches it raises `stripe.APIConnectionError` at once, as a real timeout would."""

from __future__ import annotations

from typing import Any

import stripe

from .app import Emulator
from .faults import RequestTimeout


class InProcessHTTPClient(stripe.HTTPClient):
    name = "stripe_emulator"

    def __init__(self, emulator: Emulator, timeout: float = 80.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.emulator = emulator
        self.timeout = timeout

    def _handle(self, method: str, url: str, headers: Any, post_data: Any):
        try:
            return self.emulator.handle(method, url, dict(headers or {}), post_data, timeout=self.timeout)
        except RequestTimeout as exc:
            raise stripe.APIConnectionError(
                f"Request to Stripe timed out after {self.timeout:g} s ({exc}).", should_retry=True
            ) from exc

    def request(self, method: str, url: str, headers: Any, post_data: Any = None, **_: Any):
        status, response_headers, body = self._handle(method, url, headers, post_data)
        return body.decode("utf-8"), status, {k.lower(): v for k, v in response_headers.items()}

    def request_stream(self, method: str, url: str, headers: Any, post_data: Any = None, **_: Any):
        import io

        status, response_headers, body = self._handle(method, url, headers, post_data)
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
