"""One emulator of the in-process sandbox as the provider tests drive it: its control routes
(`/_sandbox/{slug}/config`, `/stats`) and the source config that signs in to it. Each provider
test subclasses it with the emulator's own routes (consent pages, raw logs, webhook senders)."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from fastapi.testclient import TestClient


class Emulator:
    slug: ClassVar[str]

    def __init__(self, http: TestClient) -> None:
        self.http = http

    def _ok(self, response: httpx.Response) -> Any:
        assert response.status_code == 200, response.text
        return response.json()

    def configure(self, **body: Any) -> Any:
        """``POST /_sandbox/{slug}/config`` (``volume=…``, ``faults=…``, ``seed=…``)."""
        return self._ok(self.http.post(f"/_sandbox/{self.slug}/config", json=body))

    def stats(self) -> Any:
        return self._ok(self.http.get(f"/_sandbox/{self.slug}/stats"))

    def config(self) -> dict[str, Any]:
        """The config of a source that signs in to this emulator."""
        config: dict[str, Any] = self._ok(self.http.get("/_sandbox/credentials"))[self.slug][
            "config"
        ]
        return config


def location(response: httpx.Response) -> str:
    """Where a redirect (an emulator's consent page) sends the browser."""
    assert response.status_code == 302, response.text
    return response.headers["location"]


def relative(url: str) -> str:
    """An emulator URL as the in-process client requests it (path and query)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path
