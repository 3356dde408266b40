"""Redaction: no secret reaches an exception message, a log line or a run's timeline."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

SENSITIVE_KEYS = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "api_key",
        "apikey",
        "key",
        "client_secret",
        "secret",
        "password",
        "passwd",
        "signature",
        "sig",
        "code",
        "code_verifier",
        "assertion",
        "jwt",
        "auth",
        "authorization",
        "x-api-key",
        "cookie",
        "set-cookie",
        "proxy-authorization",
        "x-auth-token",
        "private_token",
    }
)
MASK = "***"


def _is_sensitive(name: str) -> bool:
    lowered = name.lower()
    return lowered in SENSITIVE_KEYS or lowered.endswith(
        ("_token", "-token", "_secret", "-secret", "_key", "-key", "apikey", "password")
    )


def redact_url(url: str) -> str:
    """The URL with secret query values and any userinfo masked."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    query = urlencode(
        [
            (k, MASK if _is_sensitive(k) else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_path(url: str) -> str:
    """Path and redacted query only (what a run's timeline shows)."""
    parts = urlsplit(redact_url(url))
    return parts.path + (f"?{parts.query}" if parts.query else "")


def redact_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {k: (MASK if _is_sensitive(k) else v) for k, v in items}


class Redactor:
    """Masks known secret values wherever they appear in a text (e.g. an echoed error body)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        known = {s for s in secrets if s and len(s) >= 4}
        # and as they travel in a URL: "a+b/c=" is sent as "a%2Bb%2Fc%3D"
        forms = known | {quote(s, safe="") for s in known} | {quote_plus(s) for s in known}
        values = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern else text
