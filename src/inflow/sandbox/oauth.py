"""A small OAuth 2.0 authorization server that provider emulators configure and mount.

    server = OAuthServer(slug="ringcentral", clients={"rc-client": "rc-secret"})
    router.include_router(server.router(authorize_path="/restapi/oauth/authorize",
                                        token_path="/restapi/oauth/token",
                                        revoke_path="/restapi/oauth/revoke"))
    info = server.authenticate(request)   # in a handler: TokenInfo, or raises TokenRejectedError
    Depends(server.dependency(reject))    # the same as a dependency; reject(reason) -> Response

Authorize consents automatically (302 to `redirect_uri` with `code` and `state`). The token
endpoint serves `authorization_code` (PKCE S256, single-use short-lived codes), `refresh_token`
(rotating: the old one is then `invalid_grant`), `client_credentials` and the jwt-bearer grant
(the assertion must be the JWT credential this server issued to the client). Clients
authenticate with HTTP Basic or form `client_id`/`client_secret`. Errors follow RFC 6749
(`{"error", "error_description"}`, 400; `invalid_client` 401) unless `error_body` reshapes them
(Entra adds `error_codes`, RingCentral `errors`). Revocation follows RFC 7009. Issued tokens
live in the emulator's state, so `/_sandbox/reset` forgets them.
"""

from __future__ import annotations

import base64
import hmac
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from inflow.sandbox.emulator import JSONObject, JSONValue, Reject, json_response
from inflow.sandbox.faults import NO_FAULTS, requested_fault
from inflow.sandbox.state import EmulatorState, clock_now, get_state
from inflow.sandbox.tokens import (
    AccessToken,
    AuthCode,
    Grant,
    RefreshToken,
    jwt_credential,
    new_token,
    s256,
)

AUTHORIZATION_CODE = "authorization_code"
REFRESH_TOKEN = "refresh_token"  # noqa: S105 (a grant type name, not a secret)
CLIENT_CREDENTIALS = "client_credentials"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ALL_GRANTS = frozenset((AUTHORIZATION_CODE, REFRESH_TOKEN, CLIENT_CREDENTIALS, JWT_BEARER))

OAuthErrorBody = Callable[[str, str], JSONObject]
RejectReason = Literal["missing", "invalid", "expired", "revoked"]


def rfc6749_error_body(error: str, description: str) -> JSONObject:
    """The RFC 6749 §5.2 error body."""
    return {"error": error, "error_description": description}


class OAuthError(Exception):
    """An RFC 6749 error from the token or revoke endpoint."""

    def __init__(self, error: str, description: str, *, basic: bool = False) -> None:
        super().__init__(description)
        self.error, self.description, self.basic = error, description, basic


class TokenRejectedError(Exception):
    """A bearer token that is missing, unknown, revoked or expired; emulators map it to 401."""

    def __init__(self, reason: RejectReason) -> None:
        super().__init__(reason)
        self.reason: RejectReason = reason


@dataclass(frozen=True)
class TokenInfo:
    """Who a valid access token speaks for."""

    client_id: str
    scopes: tuple[str, ...]
    expires_at: float


@dataclass(frozen=True)
class OAuthEndpoints:
    """Where a server's router put its endpoints (relative to the emulator's prefix)."""

    authorize: str
    token: str
    revoke: str | None


@dataclass(frozen=True)
class OfflineAccess:
    """The authorize parameter a client must send to be given a refresh token (Google's
    `access_type=offline`). With `reconsent`, a client already holding a live refresh token gets
    another only when it also asks for consent again (Google's `prompt=consent`)."""

    param: tuple[str, str]
    reconsent: tuple[str, str] | None = None


class OAuthServer:
    """An authorization server: configuration here, issued tokens in the emulator's state.

    `redirect_uris=None` accepts any absolute http(s) redirect URI (the sandbox cannot know
    where Inflow runs); `scopes=None` accepts any scope. `token_extra` adds provider fields to
    every token response. `revoke_access_on_refresh` ends the old access token when its refresh
    token is used (RingCentral); otherwise it lives until it expires (Entra, Google).
    `rotate_refresh_tokens` may be a function of the emulator's state (a volume switch);
    `offline_access` issues refresh tokens only to authorizations that asked for them (Google);
    `repeat_refresh_token=False` leaves a refresh token that did not rotate out of the refresh
    response (Google) instead of repeating it.
    """

    def __init__(
        self,
        *,
        slug: str,
        clients: Mapping[str, str | None],
        redirect_uris: Sequence[str] | None = None,
        scopes: Sequence[str] | None = None,
        default_scopes: Sequence[str] = (),
        token_ttl_s: float = 3600,
        code_ttl_s: float = 60,
        refresh_token_ttl_s: float | None = None,
        issue_refresh_tokens: bool = True,
        rotate_refresh_tokens: bool | Callable[[EmulatorState], bool] = True,
        offline_access: OfflineAccess | None = None,
        repeat_refresh_token: bool = True,
        revoke_access_on_refresh: bool = False,
        require_pkce: bool = True,
        grant_types: frozenset[str] = ALL_GRANTS,
        error_body: OAuthErrorBody = rfc6749_error_body,
        token_extra: Mapping[str, JSONValue] | None = None,
    ) -> None:
        self.slug = slug
        self.clients = dict(clients)
        self.redirect_uris = tuple(redirect_uris) if redirect_uris is not None else None
        self.scopes = frozenset(scopes) if scopes is not None else None
        self.default_scopes = tuple(default_scopes)
        self.token_ttl_s, self.code_ttl_s = token_ttl_s, code_ttl_s
        self.refresh_token_ttl_s = refresh_token_ttl_s
        self.issue_refresh_tokens = issue_refresh_tokens
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.offline_access = offline_access
        self.repeat_refresh_token = repeat_refresh_token
        self.revoke_access_on_refresh = revoke_access_on_refresh
        self.require_pkce = require_pkce
        self.grant_types = grant_types
        self.error_body = error_body
        self.token_extra = dict(token_extra or {})
        self.endpoints: OAuthEndpoints | None = None

    # ------------------------------------------------------------------ public surface

    def router(
        self, *, authorize_path: str, token_path: str, revoke_path: str | None = None
    ) -> APIRouter:
        """The authorize, token and (optional) revoke endpoints at these paths."""
        if self.endpoints is not None:
            raise RuntimeError(f"the {self.slug} OAuth server is already mounted")
        self.endpoints = OAuthEndpoints(authorize_path, token_path, revoke_path)
        router = APIRouter(tags=[f"{self.slug} oauth"])
        router.add_api_route(
            authorize_path, self._authorize, methods=["GET"], openapi_extra=NO_FAULTS
        )
        router.add_api_route(token_path, self._token, methods=["POST"])
        if revoke_path is not None:
            router.add_api_route(revoke_path, self._revoke, methods=["POST"])
        return router

    def jwt_credential(self, client_id: str) -> str:
        """The JWT credential this server accepts from `client_id` in the jwt-bearer grant."""
        return jwt_credential(self.slug, client_id)

    def describe(self, base_url: str) -> JSONObject:
        """The first client and the endpoint URLs, for `/_sandbox/credentials`."""
        client_id, secret = next(iter(self.clients.items()))
        ep = self.endpoints
        return {
            "clientId": client_id,
            "clientSecret": secret,
            "authorizeUrl": base_url + ep.authorize if ep else None,
            "tokenUrl": base_url + ep.token if ep else None,
            "revokeUrl": base_url + ep.revoke if ep and ep.revoke else None,
            "jwt": self.jwt_credential(client_id) if JWT_BEARER in self.grant_types else None,
        }

    def authenticate(self, request: Request) -> TokenInfo:
        """The access token of `request`'s `Authorization: Bearer` header, if still valid.

        Raises `TokenRejectedError` with the reason; expiry honours the emulator's `tokenTtlS`
        (even for tokens issued before it was set) and the `expired_token` request fault.
        """
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise TokenRejectedError("missing")
        state = get_state(request, self.slug)
        token = state.tokens.access.get(value.strip())
        if token is None:
            raise TokenRejectedError("invalid")
        if token.revoked or token.grant.revoked:
            raise TokenRejectedError("revoked")
        now = clock_now(request)
        ttl = state.faults.token_ttl_s
        expired = now >= token.expires_at or (ttl is not None and now >= token.issued_at + ttl)
        if expired or requested_fault(request) == "expired_token":
            raise TokenRejectedError("expired")
        return TokenInfo(token.grant.client_id, token.grant.scopes, token.expires_at)

    def dependency(
        self, reject: Callable[[RejectReason], Response]
    ) -> Callable[[Request], TokenInfo]:
        """A FastAPI dependency giving the request's `TokenInfo`, or answering `reject(reason)`.

        `reject` builds the provider's own refusal (a 401 body, or Power BI's 403 for an
        expired token): `Depends(server.dependency(my_401))`.
        """

        def authenticated(request: Request) -> TokenInfo:
            try:
                return self.authenticate(request)
            except TokenRejectedError as exc:
                raise Reject(reject(exc.reason)) from exc

        return authenticated

    # ------------------------------------------------------------------ authorize

    async def _authorize(self, request: Request) -> Response:
        """OAuth authorize: consents at once and redirects back with a code."""
        q = request.query_params
        client_id, redirect_uri = q.get("client_id"), q.get("redirect_uri")
        if client_id not in self.clients:
            return _error_page(f"Unknown client_id {client_id!r}.")
        if redirect_uri is None and self.redirect_uris is not None and len(self.redirect_uris) == 1:
            redirect_uri = self.redirect_uris[0]
        if redirect_uri is None or not self._redirect_allowed(redirect_uri):
            return _error_page(f"redirect_uri {redirect_uri!r} is not registered for this client.")
        state_param = q.get("state")

        def back(**params: str | None) -> Response:
            return RedirectResponse(_add_query(redirect_uri, {**params, "state": state_param}), 302)

        if q.get("response_type") != "code":
            return back(
                error="unsupported_response_type", error_description="use response_type=code"
            )
        scopes = tuple(q.get("scope", "").split()) or self.default_scopes
        if self.scopes is not None and not set(scopes) <= self.scopes:
            bad = " ".join(sorted(set(scopes) - self.scopes))
            return back(error="invalid_scope", error_description=f"unknown scope(s): {bad}")
        challenge, method = q.get("code_challenge"), q.get("code_challenge_method", "plain")
        if challenge is None and self.require_pkce:
            return back(error="invalid_request", error_description="code_challenge is required")
        if challenge is not None and method != "S256":
            return back(
                error="invalid_request", error_description="code_challenge_method must be S256"
            )
        state = get_state(request, self.slug)
        code = new_token()
        state.tokens.codes[code] = AuthCode(
            client_id=client_id,
            redirect_uri=q.get("redirect_uri"),
            scopes=scopes,
            code_challenge=challenge,
            expires_at=clock_now(request) + self.code_ttl_s,
            offline=self._offline(state, q.get, client_id),
        )
        return back(code=code)

    def _offline(
        self, state: EmulatorState, param: Callable[[str], str | None], client_id: str
    ) -> bool:
        """May the code of this authorize request be exchanged for a refresh token too?"""
        rule = self.offline_access
        if rule is None:
            return True
        name, value = rule.param
        if param(name) != value:
            return False
        if rule.reconsent is None:
            return True
        name, value = rule.reconsent
        if value in (param(name) or "").split():
            return True
        return not any(  # consented before: the refresh token it holds stays the one
            rt.active and not rt.grant.revoked and rt.grant.client_id == client_id
            for rt in state.tokens.refresh.values()
        )

    def _redirect_allowed(self, uri: str) -> bool:
        if self.redirect_uris is not None:
            return uri in self.redirect_uris
        parts = urlsplit(uri)
        return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.fragment

    # ------------------------------------------------------------------ token

    async def _token(self, request: Request) -> Response:
        """OAuth token endpoint: every enabled grant type."""
        state = get_state(request, self.slug)
        try:
            form = _parse_form(await request.body())
            client_id = self._client(request, form)
            body = self._grant(state, request, form.get("grant_type", ""), client_id, form)
        except OAuthError as exc:
            return self._error(exc)
        return json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _grant(
        self,
        state: EmulatorState,
        request: Request,
        grant_type: str,
        client_id: str,
        form: dict[str, str],
    ) -> JSONObject:
        if grant_type not in ALL_GRANTS:
            raise OAuthError(
                "unsupported_grant_type", f"grant_type {grant_type!r} is not supported"
            )
        if grant_type not in self.grant_types:
            raise OAuthError("unauthorized_client", f"this client may not use {grant_type}")
        now = clock_now(request)
        if grant_type == AUTHORIZATION_CODE:
            code = self._redeem_code(state, client_id, form, now)
            code.grant = Grant(client_id, code.scopes)
            refresh = self.issue_refresh_tokens and code.offline
            return self._issue(state, code.grant, now, refresh=refresh)
        if grant_type == REFRESH_TOKEN:
            return self._refresh(state, client_id, form, now)
        scopes = tuple(form.get("scope", "").split()) or self.default_scopes
        if self.scopes is not None and not set(scopes) <= self.scopes:
            raise OAuthError("invalid_scope", "unknown scope requested")
        if grant_type == JWT_BEARER:
            assertion = form.get("assertion", "")
            if not hmac.compare_digest(assertion, self.jwt_credential(client_id)):
                raise OAuthError("invalid_grant", "the assertion is not a valid JWT credential")
            return self._issue(
                state, Grant(client_id, scopes), now, refresh=self.issue_refresh_tokens
            )
        return self._issue(state, Grant(client_id, scopes), now, refresh=False)

    def _redeem_code(
        self, state: EmulatorState, client_id: str, form: dict[str, str], now: float
    ) -> AuthCode:
        code = state.tokens.codes.get(form.get("code", ""))
        if code is None or code.client_id != client_id:
            raise OAuthError("invalid_grant", "the authorization code is unknown")
        if code.used:
            if code.grant is not None:  # RFC 6749 §4.1.2: a replayed code revokes its tokens
                code.grant.revoked = True
            raise OAuthError("invalid_grant", "the authorization code was already used")
        code.used = True
        if now >= code.expires_at:
            raise OAuthError("invalid_grant", "the authorization code has expired")
        if code.redirect_uri is not None and form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError(
                "invalid_grant", "redirect_uri does not match the authorization request"
            )
        if code.code_challenge is not None:
            verifier = form.get("code_verifier")
            if verifier is None:
                raise OAuthError("invalid_request", "code_verifier is required")
            if not hmac.compare_digest(s256(verifier), code.code_challenge):
                raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        return code

    def _refresh(
        self, state: EmulatorState, client_id: str, form: dict[str, str], now: float
    ) -> JSONObject:
        value = form.get("refresh_token", "")
        rt = state.tokens.refresh.get(value)
        if rt is None or rt.grant.client_id != client_id:
            raise OAuthError("invalid_grant", "the refresh token is unknown")
        if not rt.active or rt.grant.revoked:
            raise OAuthError("invalid_grant", "the refresh token was revoked or already used")
        if rt.expires_at is not None and now >= rt.expires_at:
            raise OAuthError("invalid_grant", "the refresh token has expired")
        scopes = tuple(form.get("scope", "").split()) or rt.grant.scopes
        if not set(scopes) <= set(rt.grant.scopes):
            raise OAuthError("invalid_scope", "a refresh cannot widen the granted scopes")
        if self.revoke_access_on_refresh:
            for token in state.tokens.access.values():
                if token.grant is rt.grant:
                    token.revoked = True
        rotate = self.rotate_refresh_tokens
        if callable(rotate):
            rotate = rotate(state)
        if rotate:
            rt.active = False
        body = dict(self._issue(state, rt.grant, now, refresh=rotate))
        body["scope"] = " ".join(scopes)
        if not rotate and self.repeat_refresh_token:
            body["refresh_token"] = value
        return body

    def _issue(
        self, state: EmulatorState, grant: Grant, now: float, *, refresh: bool
    ) -> JSONObject:
        ttl = state.faults.token_ttl_s or self.token_ttl_s
        access = new_token("at_")
        state.tokens.access[access] = AccessToken(grant, issued_at=now, expires_at=now + ttl)
        body: dict[str, JSONValue] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": math.ceil(ttl),
            "scope": " ".join(grant.scopes),
        }
        if refresh:
            value = new_token("rt_")
            expires = now + self.refresh_token_ttl_s if self.refresh_token_ttl_s else None
            state.tokens.refresh[value] = RefreshToken(grant, expires_at=expires)
            body["refresh_token"] = value
        return {**body, **self.token_extra}

    # ------------------------------------------------------------------ revoke and client auth

    async def _revoke(self, request: Request) -> Response:
        """OAuth token revocation (RFC 7009): always 200 for a known client."""
        state = get_state(request, self.slug)
        try:
            form = _parse_form(await request.body())
            client_id = self._client(request, form)
        except OAuthError as exc:
            return self._error(exc)
        value = form.get("token", "")
        rt, at = state.tokens.refresh.get(value), state.tokens.access.get(value)
        if rt is not None and rt.grant.client_id == client_id:
            rt.active, rt.grant.revoked = False, True
        elif at is not None and at.grant.client_id == client_id:
            at.revoked = True
        return Response(status_code=200)

    def _client(self, request: Request, form: dict[str, str]) -> str:
        """The authenticated client id (HTTP Basic, or form client_id/client_secret)."""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        basic = scheme.lower() == "basic"
        if basic:
            if "client_secret" in form:
                raise OAuthError("invalid_request", "use one client authentication method")
            try:
                pair = base64.b64decode(encoded, validate=True).decode()
            except ValueError as exc:
                raise OAuthError(
                    "invalid_client", "malformed Basic credentials", basic=True
                ) from exc
            client_id, _, secret = (unquote(p) for p in pair.partition(":"))
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if client_id not in self.clients:
            raise OAuthError("invalid_client", "unknown client", basic=basic)
        expected = self.clients[client_id]
        if expected is not None and not hmac.compare_digest(secret.encode(), expected.encode()):
            raise OAuthError("invalid_client", "client authentication failed", basic=basic)
        return client_id

    def _error(self, exc: OAuthError) -> Response:
        status = 401 if exc.error == "invalid_client" else 400
        headers = {"Cache-Control": "no-store"}
        if exc.basic:
            headers["WWW-Authenticate"] = f'Basic realm="{self.slug}"'
        return json_response(self.error_body(exc.error, exc.description), status, headers)


def _parse_form(raw: bytes) -> dict[str, str]:
    pairs = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:  # RFC 6749 §3.2: parameters must not be repeated
            raise OAuthError("invalid_request", f"parameter {key!r} is repeated")
        form[key] = value
    return form


def _add_query(url: str, params: Mapping[str, str | None]) -> str:
    parts = urlsplit(url)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def _error_page(message: str) -> HTMLResponse:
    """RFC 6749 §4.1.2.1: a bad client or redirect URI is shown to the user, not redirected."""
    html = f"<!doctype html><title>Authorization error</title><h1>Authorization error</h1><p>{escape(message)}</p>"
    return HTMLResponse(html, status_code=400)
