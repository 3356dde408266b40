"""OAuth 2 client side: authorization URL with state and PKCE (S256), code exchange, and the
token-endpoint call every grant uses (client auth by HTTP Basic or in the form body).

PKCE and token generation come from authlib; the requests themselves go through ``Requester``
so they get the same timeouts, retries, timeline and redaction as every other provider call.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

import httpx
import orjson
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from inflow.errors import UnexpectedResponseError
from inflow.http.auth import TokenRequest, TokenSet
from inflow.http.client import Requester
from inflow.http.resolution import Action, Kind, Resolution

ClientAuthMethod = Literal["basic", "post"]
_AUTH_ERRORS = frozenset(
    {"invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope", "access_denied"}
)


def oauth_error_classifier(response: httpx.Response) -> Resolution | None:
    """RFC 6749 §5.2 errors: a refused grant or client means "reconnect", not "retry"."""
    if response.status_code not in (400, 401):
        return None
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if error in _AUTH_ERRORS:
        description = body.get("error_description") or ""
        hint = (
            "the authorization was revoked or has expired; reconnect the source"
            if error == "invalid_grant"
            else "the OAuth client credentials were refused; check the client id and secret"
        )
        return Resolution(
            Action.FAIL, Kind.AUTH, f"{error}: {description} ({hint})".replace(":  (", " (")
        )
    return None


_JSON_TYPES: dict[type, str] = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "a list",
}


@dataclass(frozen=True)
class OAuthClient:
    """A provider's token endpoint and this installation's OAuth client."""

    token_url: str
    client_id: str
    client_secret: str | None = None
    auth_method: ClientAuthMethod = "basic"
    extra: Mapping[str, str] | None = None  # extra form fields some providers need

    def token_request(self, requester: Requester) -> TokenRequest:
        """A function that posts one grant and returns the tokens."""

        async def request(form: dict[str, str]) -> TokenSet:
            data = {**form, **(self.extra or {})}
            headers: dict[str, str] = {"Accept": "application/json"}
            if self.auth_method == "basic" and self.client_secret is not None:
                pair = f"{self.client_id}:{self.client_secret}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
            else:
                data["client_id"] = self.client_id
                if self.client_secret is not None:
                    data["client_secret"] = self.client_secret
            _, body = await requester.request("POST", self.token_url, data=data, headers=headers)
            if not isinstance(body, dict):  # a 200 that is no token: the provider's oddity
                kind = _JSON_TYPES.get(type(body), "not JSON")
                raise UnexpectedResponseError(
                    f"the token endpoint answered with something that is not a token ({kind})",
                    problem=f"the body is {kind}, expected an object with an access_token",
                )
            return TokenSet.from_response(body)

        return request


@dataclass(frozen=True)
class AuthorizationStart:
    url: str
    state: str
    code_verifier: str


def start_authorization(
    authorize_url: str,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: list[str] | tuple[str, ...] = (),
    extra_params: Mapping[str, str] | None = None,
) -> AuthorizationStart:
    """The URL to send the user to, with a fresh ``state`` and a PKCE S256 challenge."""
    state = generate_token(32)
    verifier = generate_token(64)
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
        **({"scope": " ".join(scopes)} if scopes else {}),
        **(extra_params or {}),
    }
    sep = "&" if "?" in authorize_url else "?"
    return AuthorizationStart(f"{authorize_url}{sep}{urlencode(params)}", state, verifier)


async def exchange_code(
    request_token: TokenRequest, *, code: str, code_verifier: str, redirect_uri: str
) -> TokenSet:
    """Trade an authorization code (and its PKCE verifier) for tokens."""
    return await request_token(
        {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": code_verifier,
            "redirect_uri": redirect_uri,
        }
    )
