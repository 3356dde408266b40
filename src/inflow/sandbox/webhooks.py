"""Webhook senders: an emulator builds the exact request its provider would send (URL, headers,
signature, body) and either hands it back to the caller or delivers it.

An emulator's control route (``POST /{slug}/_sandbox/webhook``, say) makes a change in its data
(a call completes, a status changes), builds an `Outgoing` signed the provider's way and
answers `describe(outgoing)`; with ``deliver`` it also POSTs it to the target over HTTP and
reports the status. Tests deliver the described request themselves (the sandbox then needs no
route back into an in-process app); `inflow demo` lets the sandbox deliver it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from inflow.sandbox.emulator import JSONObject


@dataclass(frozen=True)
class Outgoing:
    """One webhook request as the provider sends it."""

    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "POST"


def describe(outgoing: Outgoing) -> JSONObject:
    """The request as JSON: the body as text (and base64, exact to the byte)."""
    return {
        "method": outgoing.method,
        "url": outgoing.url,
        "headers": dict(outgoing.headers),
        "body": outgoing.body.decode("utf-8", "replace"),
        "bodyBase64": base64.b64encode(outgoing.body).decode("ascii"),
    }


async def deliver(outgoing: Outgoing, *, timeout_s: float = 10.0) -> int:
    """POST ``outgoing`` to its URL; the receiver's status (0 when it could not be reached)."""
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        try:
            response = await client.request(
                outgoing.method, outgoing.url, content=outgoing.body, headers=dict(outgoing.headers)
            )
        except httpx.HTTPError:
            return 0
        return response.status_code
