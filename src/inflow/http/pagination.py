"""Declarative pagination: a connector states its scheme, the runtime drives the loop.

A paginator is a frozen value with two pure methods (no I/O): ``first()`` gives the first
request's parameters, ``next(step, body, count, headers)`` reads a response and gives the next
``Step`` or ``None`` when the last page was read. ``Step.url`` replaces the request URL when an
API hands out whole next-page links.

| scheme        | the API says "next page" with                       | stops when                |
|---------------|-----------------------------------------------------|---------------------------|
| `SinglePage`  | nothing                                             | after one page            |
| `PageNumber`  | `?page=N` (+ page size)                             | short page / total reached|
| `Offset`      | `?offset=N&limit=L`                                 | short page / total reached|
| `Cursor`      | a token in the body sent back as a parameter        | token missing or empty    |
| `NextUrl`     | a full (or root-relative) URL in the body           | URL missing or null       |
| `LinkHeader`  | RFC 8288 `Link: <…>; rel="next"`                    | no next link              |

A link a provider hands back is followed only on the origin (scheme, host, port) of the request
that read the first page (``check_link``): a link to another host is a ``ProviderError`` naming
the provider and that host, and no request is sent to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from inflow.errors import ProviderError
from inflow.http.redact import redact_url

JSONValue = Any  # provider JSON at the edge; narrowed by the code that reads it


def dig(body: JSONValue, path: str) -> JSONValue:
    """The value at a dotted path (``"meta.next"``); ``""`` is the body itself; None if absent."""
    if not path:
        return body
    node = body
    for part in path.split("."):
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


@dataclass(frozen=True)
class Step:
    """One request of a paginated read: extra query parameters, or a whole next URL."""

    params: Mapping[str, str | int] = field(default_factory=dict)
    url: str | None = None
    page: int = 1


class Paginator(Protocol):
    def first(self) -> Step: ...

    def next(
        self, step: Step, body: JSONValue, count: int, headers: Mapping[str, str]
    ) -> Step | None: ...


@dataclass(frozen=True)
class SinglePage:
    """No pagination: one request."""

    def first(self) -> Step:
        return Step()

    def next(
        self, step: Step, body: JSONValue, count: int, headers: Mapping[str, str]
    ) -> Step | None:
        return None


def _total(body: JSONValue, path: str | None) -> int | None:
    value = dig(body, path) if path else None
    return int(value) if isinstance(value, int | float | str) and str(value).isdigit() else None


@dataclass(frozen=True)
class PageNumber:
    """``?page=N&per_page=S``: stops on a short page, or when ``total_path`` says all were read."""

    param: str = "page"
    size_param: str | None = "per_page"
    size: int = 100
    start: int = 1
    total_path: str | None = None

    def _params(self, page: int) -> dict[str, str | int]:
        params: dict[str, str | int] = {self.param: page}
        if self.size_param:
            params[self.size_param] = self.size
        return params

    def first(self) -> Step:
        return Step(params=self._params(self.start), page=1)

    def next(
        self, step: Step, body: JSONValue, count: int, headers: Mapping[str, str]
    ) -> Step | None:
        if count == 0 or count < self.size:
            return None
        total = _total(body, self.total_path)
        if total is not None and step.page * self.size >= total:
            return None
        return Step(params=self._params(self.start + step.page), page=step.page + 1)


@dataclass(frozen=True)
class Offset:
    """``?offset=N&limit=L``: stops on a short page, or when ``total_path`` is reached."""

    param: str = "offset"
    limit_param: str = "limit"
    limit: int = 100
    total_path: str | None = None

    def first(self) -> Step:
        return Step(params={self.param: 0, self.limit_param: self.limit}, page=1)

    def next(
        self, step: Step, body: JSONValue, count: int, headers: Mapping[str, str]
    ) -> Step | None:
        offset = int(step.params.get(self.param, 0)) + count
        total = _total(body, self.total_path)
        if count == 0 or count < self.limit or (total is not None and offset >= total):
            return None
        return Step(params={self.param: offset, self.limit_param: self.limit}, page=step.page + 1)


@dataclass(frozen=True)
class Cursor:
    """A token in the body (``token_path``) sent back as ``param`` until it is empty."""

    token_path: str
    param: str
    size_param: str | None = None
    size: int | None = None

    def _size(self) -> dict[str, str | int]:
        return {self.size_param: self.size} if self.size_param and self.size else {}

    def first(self) -> Step:
        return Step(params=self._size(), page=1)

    def next(
        self, step: Step, body: JSONValue, count: int, headers: Mapping[str, str]
    ) -> Step | None:
        token = dig(body, self.token_path)
        if not token:
            return None
        return Step(params={**self._size(), self.param: str(token)}, page=step.page + 1)


@dataclass(frozen=True)
class NextUrl:
    """A next-page URL in the body at ``path`` (absolute, or relative to the API root)."""

    path: str
    size_param: str | None = None
    size: int | None = None

    def first(self) -> Step:
        params: dict[str, str | int] = {}
        if self.size_param and self.size:
            params[self.size_param] = self.size
        return Step(params=params, page=1)

    def next(
        self, step: Step, body: JSONValue, count: int, headers: Mapping[str, str]
    ) -> Step | None:
        url = dig(body, self.path)
        if not url or not isinstance(url, str):
            return None
        return Step(url=url, page=step.page + 1)


# One link value: ``<url>`` then its parameters (URLs may hold commas, so no split on ",").
_LINK = re.compile(r"<(?P<url>[^>]*)>(?P<params>[^<]*)")
# ``rel="next"``, ``rel=next`` or several types: ``rel="next last"`` (RFC 8288 §3.3).
_REL = re.compile(r';\s*rel\s*=\s*"?([^";,]*)', re.IGNORECASE)


@dataclass(frozen=True)
class LinkHeader:
    """RFC 8288 ``Link`` header with ``rel="next"``."""

    size_param: str | None = None
    size: int | None = None

    def first(self) -> Step:
        return Step(params={self.size_param: self.size} if self.size_param and self.size else {})

    def next(
        self, step: Step, body: JSONValue, count: int, headers: Mapping[str, str]
    ) -> Step | None:
        for link in _LINK.finditer(headers.get("link", "")):
            rel = _REL.search(link.group("params"))
            if rel and "next" in rel.group(1).lower().split():
                return Step(url=link.group("url").strip(), page=step.page + 1)
        return None


Pagination = SinglePage | PageNumber | Offset | Cursor | NextUrl | LinkHeader


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of an absolute URL, the port filled in for http and https."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port out of range or not a number: matches no origin
        port = -1
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def check_link(
    url: str, origin: str, *, provider: str, redactor: Callable[[str], str] = str
) -> None:
    """Refuse ``url`` (a provider-given link, resolved as it would be requested) unless it is on
    the origin of ``origin`` (the URL the source was read from)."""
    if origin_of(url) == origin_of(origin):
        return
    host = urlsplit(redact_url(url)).hostname or "(no host)"
    own = origin_of(origin)[1] or "(no host)"
    raise ProviderError(
        redactor(
            f"{provider} handed back a next-page link to another host ({host}); "
            f"Inflow follows links only on {own}, so it was not requested"
        ),
        slug=provider,
        method="GET",
        url=redactor(redact_url(url)),
    )
