"""Emulator of a custom source's own API, prefix `/custom`: JSON a user might point Inflow at.

`GET /custom/metrics?page=N&pageSize=S` (header `X-Api-Key`) lists events, newest day last:
`{"data": [item…], "links": {"next": <absolute URL or null>}, "meta": {"page", "pageSize",
"total"}}`; each item nests its fields::

    {"id": "evt_739000_3", "recordedAt": "2026-11-20T14:05:09Z", "event": {"name": "calls"},
     "stats": {"value": 7}, "region": "eu", "channel": {"name": "ads"}}

Metrics `signups`, `calls`, `revenue` (a numeric string, "123.45") and `wait_seconds` (an
average in the credentials' mapping). Data is a pure function of the seed and the sandbox
clock's today. Volume keys: `days` (span ending today, 28), `perDay` (items a day, 12),
`pageSize` (default page size, 50), `badItems` (that many items spread through the listing
carry no number: `"n/a"` or no `stats`), `ratePerSecond` (a real limit; 0 = off).

`POST /custom/_sandbox/webhook {url, secret?, items?, eventId?, timestamp?, deliver?}` answers
the signed push a user's system would send (today's items unless `items` are given), signed
`sha256=HMAC-SHA256(secret, "{timestamp}.{eventId}.{body}")` as docs/webhooks-custom.md says;
with `deliver` it also POSTs it.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, date, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from starlette.responses import Response

from inflow.sandbox.data import iso_z, pick, stable_hash
from inflow.sandbox.emulator import Emulator, JSONObject, Reject, json_response
from inflow.sandbox.faults import NO_FAULTS
from inflow.sandbox.state import EmulatorState, clock_now, get_state
from inflow.sandbox.webhooks import Outgoing, deliver, describe

SLUG = "custom"
API_KEY = "ck_test_inflow_custom_0001"
SECRET = "whsec_test_inflow_custom_0001"  # noqa: S105 (the sandbox's fake test secret)
METRICS = ("signups", "calls", "revenue", "wait_seconds")
REGIONS = ("eu", "us", "apac")
CHANNELS = ("ads", "organic", "referral")
DAY_S = 86_400


def reject(status: int, message: str) -> Reject:
    return Reject(json_response({"error": message}, status))


def _item(seed: int, ordinal: int, i: int, bad: bool) -> dict[str, Any]:
    h = stable_hash(seed, ordinal, i)
    metric = pick(h, METRICS)
    at = (ordinal - date(1970, 1, 1).toordinal()) * DAY_S + (h >> 8) % DAY_S
    amount = 1 + (h >> 32) % 50
    value: Any = f"{amount * 3}.{(h >> 40) % 100:02d}" if metric == "revenue" else amount
    item: dict[str, Any] = {
        "id": f"evt_{ordinal}_{i}",
        "recordedAt": iso_z(at),
        "event": {"name": metric},
        "stats": {"value": value},
        "region": pick(h >> 16, REGIONS),
        "channel": {"name": pick(h >> 24, CHANNELS)},
    }
    if bad:  # the kinds of bad item a real feed has: a placeholder, a missing block
        if (h >> 48) % 2:
            item["stats"] = {"value": "n/a"}
        else:
            del item["stats"]
    return item


def listing(state: EmulatorState, today: date) -> list[dict[str, Any]]:
    """Every item at the current seed and volume, oldest day first."""
    days, per_day = state.volume_of("days"), state.volume_of("perDay")
    total = days * per_day
    bad = min(state.volume_of("badItems"), total)
    broken = {k * total // bad for k in range(bad)} if bad else set()
    first = today.toordinal() - days + 1
    return [_item(state.seed, first + n // per_day, n % per_day, n in broken) for n in range(total)]


def _today(request: Request) -> date:
    return datetime.fromtimestamp(clock_now(request), UTC).date()


def _int(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= high:
        raise reject(400, f"{name} must be an integer from 1 to {high}")
    return int(raw)


api = APIRouter(tags=[SLUG])


@api.get("/metrics")
async def list_metrics(request: Request) -> Response:
    """Events, page by page, each page linking the next by absolute URL."""
    if not hmac.compare_digest(request.headers.get("x-api-key", "").encode(), API_KEY.encode()):
        raise reject(401, "missing or invalid X-Api-Key")
    state = get_state(request, SLUG)
    page = _int(request, "page", 1, 1_000_000)
    size = _int(request, "pageSize", state.volume_of("pageSize"), 1000)
    items = listing(state, _today(request))
    data = items[(page - 1) * size : page * size]
    more = page * size < len(items)
    nxt = str(request.url.include_query_params(page=page + 1, pageSize=size)) if more else None
    meta = {"page": page, "pageSize": size, "total": len(items)}
    return json_response({"data": data, "links": {"next": nxt}, "meta": meta})


class WebhookIn(BaseModel):
    """`POST /custom/_sandbox/webhook`: what to push, where, signed with which secret."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    url: str
    secret: str = SECRET
    items: list[dict[str, Any]] | None = None
    event_id: str | None = None
    timestamp: int | None = None
    deliver: bool = False


def sign(secret: str, timestamp: str, event_id: str, body: bytes) -> str:
    """The documented scheme, written here independently of the connector."""
    message = timestamp.encode() + b"." + event_id.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


@api.post("/_sandbox/webhook", openapi_extra=NO_FAULTS)
async def send_webhook(request: Request, body: WebhookIn) -> Response:
    """The signed push a user's system would send (today's items unless given)."""
    state = get_state(request, SLUG)
    today = _today(request)
    items = body.items
    if items is None:
        items = [i for i in listing(state, today) if i["recordedAt"].startswith(today.isoformat())]
    payload = orjson.dumps(items)
    timestamp = str(int(clock_now(request)) if body.timestamp is None else body.timestamp)
    event_id = body.event_id or f"evt_{timestamp}_{hashlib.sha256(payload).hexdigest()[:12]}"
    outgoing = Outgoing(
        url=body.url,
        body=payload,
        headers={
            "content-type": "application/json",
            "x-inflow-timestamp": timestamp,
            "x-inflow-event-id": event_id,
            "x-inflow-signature": sign(body.secret, timestamp, event_id, payload),
        },
    )
    described: dict[str, Any] = dict(describe(outgoing))
    if body.deliver:
        described["delivered"] = await deliver(outgoing)
    return json_response(described)


def credentials(base_url: str) -> JSONObject:
    """A working pull (and push) config for a custom source reading this emulator."""
    return {
        "platform": SLUG,
        "apiUrl": f"{base_url}/metrics",
        "headerName": "X-Api-Key",
        "headerValue": API_KEY,
        "mapping": {
            "records": "$.data[*]",
            "metric": "$.event.name",
            "timestamp": "$.recordedAt",
            "value": "$.stats.value",
            "dimensions": {"region": "$.region", "channel": "$.channel.name"},
            "granularity": "day",
            "aggregations": {"wait_seconds": "average"},
            "units": {"revenue": "EUR", "wait_seconds": "seconds"},
            "next": "$.links.next",
        },
        "secret": SECRET,
        "timezone": "UTC",
    }


EMULATOR = Emulator(
    slug=SLUG,
    router=api,
    credentials=credentials,
    default_volume={"days": 28, "perDay": 12, "pageSize": 50, "badItems": 0, "ratePerSecond": 0},
    error_body=lambda _status, message: {"error": message},
)
