"""What an emulated authorization server has issued: codes, grants, access and refresh tokens.

A *grant* is one authorization (a code exchange, a client-credentials or JWT grant); its refresh
token rotates and its access tokens come and go, and revoking it ends them all. Tokens are
random opaque strings; JWT credentials (RingCentral-style, for the jwt-bearer grant) are
deterministic so `/_sandbox/credentials` can hand one out before any server state exists.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

import orjson


@dataclass
class Grant:
    """One authorization of a client, shared by every token it produced."""

    client_id: str
    scopes: tuple[str, ...]
    revoked: bool = False


@dataclass
class AuthCode:
    """An authorization code: single-use, short-lived, bound to its redirect URI and PKCE."""

    client_id: str
    redirect_uri: str | None
    scopes: tuple[str, ...]
    code_challenge: str | None
    expires_at: float
    used: bool = False
    grant: Grant | None = None  # set once exchanged, so a replay can revoke what it produced
    offline: bool = True  # the exchange may issue a refresh token


@dataclass
class AccessToken:
    """An access token; `issued_at` lets a later `tokenTtlS` shorten its life."""

    grant: Grant
    issued_at: float
    expires_at: float
    revoked: bool = False


@dataclass
class RefreshToken:
    """A refresh token; `active` is false once rotated away or revoked."""

    grant: Grant
    expires_at: float | None
    active: bool = True


@dataclass
class TokenStore:
    """Everything one emulator's authorization server has issued (forgotten on reset)."""

    codes: dict[str, AuthCode] = field(default_factory=dict)
    access: dict[str, AccessToken] = field(default_factory=dict)
    refresh: dict[str, RefreshToken] = field(default_factory=dict)

    def clear(self) -> None:
        """Forget every code and token."""
        self.codes.clear()
        self.access.clear()
        self.refresh.clear()

    def revoke_all(self) -> None:
        """Revoke every grant, as a user withdrawing consent does."""
        for token in self.access.values():
            token.grant.revoked = True
        for rt in self.refresh.values():
            rt.grant.revoked = True
            rt.active = False
        self.codes.clear()


def new_token(prefix: str = "") -> str:
    """A random opaque token."""
    return prefix + secrets.token_urlsafe(32)


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a code verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_credential(issuer: str, client_id: str) -> str:
    """The JWT credential the server `issuer` has 'generated' for `client_id` (HS256).

    Deterministic, so the credential survives a reset and a restart, like one a user generated
    once in a provider's developer console.
    """
    header = _b64(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
    claims = {"iss": issuer, "sub": client_id, "aud": issuer, "iat": 1_700_000_000}
    payload = _b64(orjson.dumps(claims))
    key = hashlib.sha256(f"inflow-sandbox:{issuer}".encode()).digest()
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"
