"""``POST /api/webhooks/{sourceId}``: events pushed by a provider (public, signature-checked).

The source's connector verifies the delivery its provider's way (Twilio's ``X-Twilio-Signature``,
RingCentral's validation handshake and verification token, Aircall's token, the custom HMAC);
a bad signature, a replayed event id or a stale timestamp is a 401 and changes nothing. Records
an event carries are stored at once through the sync's upsert; a period an event changed is
read again in the background (204 first: providers give up on slow receivers).

Providers sign the URL they call: behind a proxy set ``INFLOW_PUBLIC_URL`` to the address they
use, so the URL checked here is that one.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from inflow.api.deps import AuditDep, SessionDep
from inflow.connectors.spec import WebhookRequest
from inflow.errors import InflowError
from inflow.sync import webhooks
from inflow.sync.worker import InProcessWorker

router = APIRouter(tags=["webhooks"])

FORM = "application/x-www-form-urlencoded"


def public_url(request: Request) -> str:
    """The URL the provider called: ``INFLOW_PUBLIC_URL`` + path and query when set."""
    base = request.app.state.settings.public_url
    if not base:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{base.rstrip('/')}{request.url.path}{query}"


@router.post(
    "/api/webhooks/{source_id}",
    status_code=204,
    operation_id="webhooks-receive",
    responses={401: {"description": "bad or missing signature, replayed or stale event"}},
)
async def receive(
    source_id: uuid.UUID, request: Request, session: SessionDep, audit: AuditDep
) -> Response:
    """Verify a provider's event and store what it says (public: the signature is the check)."""
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    incoming = WebhookRequest(
        url=public_url(request),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        form=form if content_type == FORM else {},
    )
    target = f"data_sources:{source_id}"
    vault = request.app.state.vault

    def store() -> webhooks.Received:
        try:
            received = webhooks.receive(session, vault, source_id, incoming)
        except InflowError as exc:
            session.rollback()
            audit("webhook.receive", "failure", target=target, details={"error": exc.message})
            session.commit()
            raise
        if received.reply is None:
            audit(
                "webhook.receive",
                target=target,
                details={"events": received.events, "stored": received.stored},
            )
        session.commit()
        return received

    received = await run_in_threadpool(store)
    if received.reply is not None:  # a handshake: answered as the provider expects
        reply = received.reply
        return Response(status_code=reply.status, headers=dict(reply.headers))
    worker: InProcessWorker = request.app.state.worker
    for window in received.resync:
        worker.resync(source_id, window)
    return Response(status_code=204)
