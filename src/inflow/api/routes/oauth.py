"""OAuth consent: send the user to the provider, take the code back, keep the tokens."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse

from inflow.api.authz import require
from inflow.api.deps import AuditDep, CurrentUser, SessionDep
from inflow.errors import BadRequestError, InflowError
from inflow.storage.models import DataSource
from inflow.sync import oauth

router = APIRouter(tags=["oauth"])


def back_to_source(source_id: uuid.UUID, outcome: str, error: str = "") -> RedirectResponse:
    """The browser goes back to the source's page in the web UI, which shows the result."""
    query = {"oauth": outcome} | ({"error": error[:300]} if error else {})
    return RedirectResponse(f"/sources/{source_id}?{urlencode(query)}", status_code=302)


@router.get("/api/oauth/{service_id}/authorize", status_code=302, operation_id="oauth-authorize")
def authorize(
    service_id: str,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    audit: AuditDep,
    source_id: uuid.UUID = Query(alias="sourceId"),
) -> RedirectResponse:
    """Redirect to the provider's consent page (state + PKCE S256)."""
    source = require(session, user, DataSource, source_id, audit=audit)
    if source.type != service_id:
        raise BadRequestError(f"source {source_id} is a {source.type} source, not {service_id}")
    redirect_uri = str(request.url_for("oauth_callback", service_id=service_id))
    url = oauth.begin(
        request.app.state.engine_deps,
        session,
        source=source,
        user_id=user.id,
        redirect_uri=redirect_uri,
    )
    audit("oauth.authorize", target=f"data_sources:{source_id}")
    return RedirectResponse(url, status_code=302)


@router.get(
    "/api/oauth/{service_id}/callback", name="oauth_callback", operation_id="oauth-callback"
)
def callback(
    service_id: str,
    request: Request,
    session: SessionDep,
    audit: AuditDep,
    state: str = "",
    code: str = "",
    error: str = "",
    error_description: str = "",
) -> RedirectResponse:
    """Public, state-checked: exchange the code, store the tokens encrypted, back to the source's page."""
    pending = oauth.claim_state(session, state)
    source_id = pending.source_id
    target = f"data_sources:{source_id}"
    source = session.get(DataSource, source_id)
    if source is None or source.type != service_id:
        audit(
            "oauth.callback",
            "failure",
            target=target,
            details={"error": "wrong service"},
            commit=True,
        )
        raise BadRequestError("this callback does not belong to that service")
    verifier = request.app.state.vault.decrypt(pending.code_verifier)["v"]
    session.commit()  # the state is spent whatever happens next
    if error or not code:
        reason = error_description or error or "no authorization code"
        audit("oauth.callback", "failure", target=target, details={"error": reason}, commit=True)
        return back_to_source(source_id, "failed", reason)
    try:
        request.app.state.worker.call(
            oauth.complete(
                request.app.state.engine_deps,
                source_id=source_id,
                code=code,
                code_verifier=verifier,
                redirect_uri=pending.redirect_uri,
            )
        )
    except InflowError as exc:
        audit(
            "oauth.callback", "failure", target=target, details={"error": exc.message}, commit=True
        )
        return back_to_source(source_id, "failed", exc.message)
    audit("oauth.callback", target=target)
    return back_to_source(source_id, "connected")
