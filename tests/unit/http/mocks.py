"""Small ``httpx.MockTransport`` handlers and a ``Requester`` factory (STYLE B11: the
transport is this layer's test seam)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from inflow.http.client import HttpOptions, Requester, TimelineEntry, build_client
from inflow.http.retry import RetryPolicy

Handler = Callable[[httpx.Request], Any]


@dataclass(frozen=True)
class Reply:
    """A response to build afresh for every request (a Response object is single-use)."""

    status: int = 200
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def build(self) -> httpx.Response:
        if self.content is not None:
            return httpx.Response(self.status, headers=dict(self.headers), content=self.content)
        return httpx.Response(self.status, headers=dict(self.headers), json=self.json)


class Recorder:
    """A MockTransport handler answering from a list (the last answer repeats) that keeps every
    request it saw."""

    def __init__(self, *answers: Reply | Exception) -> None:
        self.answers = list(answers) or [Reply()]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer.build()

    @property
    def hits(self) -> int:
        return len(self.requests)


class Waits:
    """An ``on_wait`` hook recording what the layer asked to wait for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def __call__(self, reason: str, seconds: float) -> None:
        self.calls.append((reason, seconds))

    @property
    def seconds(self) -> list[float]:
        return [s for _, s in self.calls]


FAST = RetryPolicy(attempts=4, base_s=0.01, max_s=0.05, total_s=60.0)


def make_requester(
    handler: Handler,
    *,
    retry_policy: RetryPolicy = FAST,
    allow_private_urls: bool = True,
    max_response_bytes: int = 1024 * 1024,
    timeline: list[TimelineEntry] | None = None,
    **kwargs: Any,
) -> Requester:
    """A ``Requester`` for the provider ``acme`` whose HTTP goes to ``handler``."""
    options = HttpOptions(
        allow_private_urls=allow_private_urls,
        max_response_bytes=max_response_bytes,
        retry=retry_policy,
    )
    client = build_client(options, transport=httpx.MockTransport(handler))
    return Requester(
        client,
        slug="acme",
        options=options,
        on_timeline=timeline.append if timeline is not None else None,
        **kwargs,
    )
