"""Auth flows and token sources: bearer + one refresh on a 401, cached grants, refreshing
authorization-code tokens (ahead of expiry, rotation, one refresh for many callers)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import anyio
import httpx
import pytest

from inflow.errors import AccessDeniedError, CredentialsError, UnexpectedResponseError
from inflow.http.auth import (
    LEEWAY_S,
    BearerAuth,
    ClientCredentials,
    HeaderAuth,
    JwtBearer,
    MemoryTokenStore,
    OAuth2Auth,
    QueryAuth,
    RefreshingTokens,
    TokenRequest,
    TokenSet,
)
from inflow.http.oauth import OAuthClient, oauth_error_classifier

from .mocks import make_requester

pytestmark = pytest.mark.anyio

API = "https://api.example.com/v1/me"
TOKEN_URL = "https://auth.example.com/oauth/token"


def key() -> str:
    return f"acme:{uuid.uuid4().hex}"


class TokenEndpoint:
    """A token endpoint: answers each grant with the next token set, counts its hits."""

    def __init__(
        self,
        *,
        expires_in: float | None = 3600,
        rotate: bool = True,
        error: tuple[int, dict[str, Any]] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.expires_in, self.rotate, self.error, self.delay_s = expires_in, rotate, error, delay_s
        self.forms: list[dict[str, str]] = []
        self.requests: list[httpx.Request] = []

    @property
    def hits(self) -> int:
        return len(self.forms)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.forms.append({k: v[0] for k, v in parse_qs(request.content.decode()).items()})
        if self.delay_s:
            await anyio.sleep(self.delay_s)  # a slow endpoint, so concurrent callers overlap
        if self.error is not None:
            return httpx.Response(self.error[0], json=self.error[1])
        body: dict[str, Any] = {"access_token": f"access-{self.hits}", "token_type": "bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        if self.rotate:
            body["refresh_token"] = f"refresh-{self.hits}"
        return httpx.Response(200, json=body)

    def request_token(self) -> TokenRequest:
        """The grant poster the token sources use: OAuthClient through a Requester."""
        oauth = OAuthClient(TOKEN_URL, "cid", "csecret")
        return oauth.token_request(make_requester(self, classifier=oauth_error_classifier))


class Api:
    """A provider API that accepts only the given bearer tokens."""

    def __init__(self, *valid: str) -> None:
        self.valid = set(valid)
        self.seen: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") in {f"Bearer {t}" for t in self.valid}:
            return httpx.Response(200, json={"id": "me"})
        return httpx.Response(401, json={"message": "Invalid access token"})


class Source:
    """A ``TokenSource`` that hands out the next token when told one is stale."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.calls: list[str | None] = []

    async def token(self, *, stale: str | None = None) -> str:
        self.calls.append(stale)
        if stale is not None and len(self.tokens) > 1:
            self.tokens.pop(0)
        return self.tokens[0]


# ------------------------------------------------------------------ static schemes


@pytest.mark.parametrize(
    ("auth", "header", "value", "url"),
    [
        pytest.param(BearerAuth("t0k"), "Authorization", "Bearer t0k", API, id="bearer"),
        pytest.param(HeaderAuth("X-Api-Key", "k3y"), "X-Api-Key", "k3y", API, id="header"),
        pytest.param(QueryAuth("api_key", "k3y"), None, None, f"{API}?api_key=k3y", id="query"),
    ],
)
async def test_static_auth_sets_the_secret(
    auth: httpx.Auth, header: str | None, value: str | None, url: str
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    transport = httpx.MockTransport(handler)
    async with httpx.AsyncClient(transport=transport, auth=auth) as client:
        await client.get(API)
    [request] = seen
    assert str(request.url) == url
    if header is not None:
        assert request.headers[header] == value


# ------------------------------------------------------------------ OAuth2Auth


async def test_oauth2_auth_adds_the_bearer() -> None:
    api, source = Api("t1"), Source("t1")
    requester = make_requester(api)
    _, body = await requester.request("GET", API, auth=OAuth2Auth(source))
    assert body == {"id": "me"}
    assert api.seen[-1] == "Bearer t1"
    assert source.calls == [None]


async def test_oauth2_auth_refreshes_once_on_401_and_replays() -> None:
    api, source = Api("fresh"), Source("old", "fresh")
    _, body = await make_requester(api).request("GET", API, auth=OAuth2Auth(source))
    assert body == {"id": "me"}
    assert api.seen == ["Bearer old", "Bearer fresh"]
    assert source.calls == [None, "old"]


async def test_oauth2_auth_does_not_loop_on_a_second_401() -> None:
    api, source = Api(), Source("old", "fresh", "fresher")
    with pytest.raises(CredentialsError, match="Invalid access token"):
        await make_requester(api).request("GET", API, auth=OAuth2Auth(source))
    assert api.seen == ["Bearer old", "Bearer fresh"]
    assert source.calls == [None, "old"]


async def test_oauth2_auth_does_not_replay_the_same_token() -> None:
    api, source = Api(), Source("only")
    with pytest.raises(CredentialsError):
        await make_requester(api).request("GET", API, auth=OAuth2Auth(source))
    assert api.seen == ["Bearer only"]


class ExpiredIs403(Api):
    """An API that refuses a stale token with 403 ``TokenExpired`` (as Power BI does)."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = super().__call__(request)
        if response.status_code == 401:
            return httpx.Response(403, json={"error": {"code": "TokenExpired"}})
        return response


def token_expired(response: httpx.Response) -> bool:
    return response.status_code == 403 and b"TokenExpired" in response.content


async def test_oauth2_auth_refresh_when_names_other_expiry_refusals() -> None:
    api, source = ExpiredIs403("fresh"), Source("old", "fresh")
    auth = OAuth2Auth(source, refresh_when=token_expired)
    _, body = await make_requester(api).request("GET", API, auth=auth)
    assert body == {"id": "me"}
    assert api.seen == ["Bearer old", "Bearer fresh"]
    assert source.calls == [None, "old"]


async def test_oauth2_auth_without_refresh_when_a_403_is_final() -> None:
    api, source = ExpiredIs403("fresh"), Source("old", "fresh")
    with pytest.raises(AccessDeniedError):
        await make_requester(api).request("GET", API, auth=OAuth2Auth(source))
    assert api.seen == ["Bearer old"]
    assert source.calls == [None]


async def test_oauth2_auth_with_refreshing_tokens_end_to_end() -> None:
    endpoint = TokenEndpoint()
    store = MemoryTokenStore(TokenSet("revoked", refresh_token="r0", expires_at=time.time() + 3600))
    source = RefreshingTokens(key(), store, endpoint.request_token())
    api = Api("access-1")
    _, body = await make_requester(api).request("GET", API, auth=OAuth2Auth(source))
    assert body == {"id": "me"}
    assert endpoint.hits == 1
    assert endpoint.forms[0] == {"grant_type": "refresh_token", "refresh_token": "r0"}
    assert store.tokens is not None
    assert (store.tokens.access_token, store.tokens.refresh_token) == ("access-1", "refresh-1")


# ------------------------------------------------------------------ cached grants


@pytest.mark.parametrize(
    ("expires_in", "hits"),
    [
        pytest.param(3600, 1, id="cached-until-near-expiry"),
        pytest.param(LEEWAY_S - 10, 1, id="short-lived-cached-for-half-its-life"),
        pytest.param(None, 1, id="no-expiry-cached"),
    ],
)
async def test_client_credentials_caches_until_near_expiry(
    expires_in: float | None, hits: int
) -> None:
    endpoint = TokenEndpoint(expires_in=expires_in, rotate=False)
    source = ClientCredentials(key(), endpoint.request_token(), scope="reports.read")
    tokens = [await source.token() for _ in range(3)]
    assert endpoint.hits == hits
    assert tokens[-1] == f"access-{hits}"
    assert endpoint.forms[0] == {"grant_type": "client_credentials", "scope": "reports.read"}


async def test_client_credentials_requests_a_new_token_when_expired_or_stale() -> None:
    endpoint = TokenEndpoint(rotate=False)
    source = ClientCredentials(key(), endpoint.request_token())
    assert await source.token() == "access-1"
    assert await source.token(stale="access-1") == "access-2"  # refused by the provider
    assert await source.token(stale="access-1") == "access-2"  # already replaced
    source._tokens = TokenSet("access-2", expires_at=time.time() + LEEWAY_S / 2)  # near expiry
    assert await source.token() == "access-3"
    assert endpoint.hits == 3
    assert endpoint.forms[0] == {"grant_type": "client_credentials"}


async def test_jwt_bearer_sends_the_assertion_grant() -> None:
    endpoint = TokenEndpoint(rotate=False)
    source = JwtBearer(key(), endpoint.request_token(), assertion="eyJhbGciOi.payload.sig")
    assert await source.token() == "access-1"
    assert await source.token() == "access-1"
    assert endpoint.forms == [
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": "eyJhbGciOi.payload.sig",
        }
    ]


# ------------------------------------------------------------------ RefreshingTokens


def stored(expires_in: float | None, *, refresh: str | None = "r0") -> MemoryTokenStore:
    """A store holding access token ``a0`` (and refresh token ``refresh``)."""
    expires_at = None if expires_in is None else time.time() + expires_in
    return MemoryTokenStore(TokenSet("a0", refresh_token=refresh, expires_at=expires_at))


@pytest.mark.parametrize(
    ("expires_in", "refreshed"),
    [
        pytest.param(3600, False, id="valid"),
        pytest.param(None, False, id="no-expiry"),
        pytest.param(LEEWAY_S + 30, False, id="just-outside-leeway"),
        pytest.param(LEEWAY_S - 30, True, id="within-leeway"),
        pytest.param(-10, True, id="expired"),
    ],
)
async def test_refreshing_tokens_refresh_ahead_of_expiry(
    expires_in: float | None, refreshed: bool
) -> None:
    endpoint = TokenEndpoint()
    store = stored(expires_in)
    token = await RefreshingTokens(key(), store, endpoint.request_token()).token()
    assert token == ("access-1" if refreshed else "a0")
    assert endpoint.hits == int(refreshed)
    assert store.saves == int(refreshed)


async def test_refreshing_tokens_refresh_a_stale_token() -> None:
    endpoint = TokenEndpoint()
    source = RefreshingTokens(key(), stored(3600), endpoint.request_token())
    assert await source.token(stale="a0") == "access-1"
    assert await source.token(stale="a0") == "access-1"  # replaced meanwhile: no second refresh
    assert endpoint.hits == 1


@pytest.mark.parametrize(
    ("rotate", "refresh_token"),
    [
        pytest.param(True, "refresh-1", id="rotated-saved"),
        pytest.param(False, "r0", id="not-rotated-kept"),
    ],
)
async def test_refreshing_tokens_save_the_refresh_token(rotate: bool, refresh_token: str) -> None:
    endpoint = TokenEndpoint(rotate=rotate)
    store = stored(-10)
    await RefreshingTokens(key(), store, endpoint.request_token()).token()
    assert store.saves == 1
    assert store.tokens is not None
    assert store.tokens.refresh_token == refresh_token
    assert store.tokens.access_token == "access-1"
    assert store.tokens.expires_at is not None
    assert store.tokens.expires_at > time.time() + 3000
    assert endpoint.forms == [{"grant_type": "refresh_token", "refresh_token": "r0"}]


async def test_refreshing_tokens_ten_concurrent_callers_refresh_once() -> None:
    endpoint = TokenEndpoint(delay_s=0.05)
    store = stored(-10)
    source = RefreshingTokens(key(), store, endpoint.request_token())
    results: list[str] = []

    async def call() -> None:
        results.append(await source.token())

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(call)

    assert endpoint.hits == 1
    assert results == ["access-1"] * 10
    assert store.saves == 1


@pytest.mark.parametrize(
    ("error", "message"),
    [
        pytest.param(
            (400, {"error": "invalid_grant", "error_description": "Refresh token revoked"}),
            "invalid_grant: Refresh token revoked (the authorization was revoked or has expired; "
            "reconnect the source)",
            id="invalid-grant",
        ),
        pytest.param(
            (400, {"error": "invalid_grant"}),
            "invalid_grant (the authorization was revoked or has expired; reconnect the source)",
            id="invalid-grant-no-description",
        ),
        pytest.param(
            (401, {"error": "invalid_client", "error_description": "Bad secret"}),
            "invalid_client: Bad secret (the OAuth client credentials were refused; check the "
            "client id and secret)",
            id="invalid-client",
        ),
    ],
)
async def test_refreshing_tokens_refused_grant_is_a_credentials_error(
    error: tuple[int, dict[str, Any]], message: str
) -> None:
    endpoint = TokenEndpoint(error=error)
    store = stored(-10)
    with pytest.raises(CredentialsError) as caught:
        await RefreshingTokens(key(), store, endpoint.request_token()).token()
    assert caught.value.message == f"acme: {message}"
    assert caught.value.fault == "user"
    assert endpoint.hits == 1  # refused grants are not retried
    assert store.saves == 0


@pytest.mark.parametrize(
    ("make_store", "message"),
    [
        pytest.param(MemoryTokenStore, "connect it first", id="no-tokens"),
        pytest.param(
            lambda: stored(-10, refresh=None), "no refresh token: reconnect", id="no-refresh-token"
        ),
    ],
)
async def test_refreshing_tokens_without_what_they_need(
    make_store: Callable[[], MemoryTokenStore], message: str
) -> None:
    store = make_store()  # made on the test's clock, not when the tests were collected
    endpoint = TokenEndpoint()
    with pytest.raises(CredentialsError, match=message):
        await RefreshingTokens(key(), store, endpoint.request_token()).token()
    assert endpoint.hits == 0


async def test_refreshing_tokens_disconnected_while_waiting_for_the_lock() -> None:
    class Vanishing(MemoryTokenStore):
        async def load(self) -> TokenSet | None:
            tokens, self.tokens = self.tokens, None  # the source is disconnected meanwhile
            return tokens

    endpoint = TokenEndpoint()
    store = Vanishing(TokenSet("a0", refresh_token="r0", expires_at=time.time() - 10))
    with pytest.raises(CredentialsError, match="connect it first"):
        await RefreshingTokens(key(), store, endpoint.request_token()).token()
    assert endpoint.hits == 0


def test_token_locks_are_per_event_loop() -> None:
    """The same key used from two event loops (threads) must not share an asyncio.Lock."""
    k = key()

    async def contend() -> list[str]:
        endpoint = TokenEndpoint(delay_s=0.01)
        source = ClientCredentials(k, endpoint.request_token())
        return list(await asyncio.gather(source.token(), source.token()))

    assert asyncio.run(contend()) == ["access-1", "access-1"]
    assert asyncio.run(contend()) == ["access-1", "access-1"]


# ------------------------------------------------------------------ TokenSet


def test_token_set_from_response() -> None:
    body = {
        "access_token": "a",
        "token_type": "bearer",
        "refresh_token": "r",
        "expires_in": "3600",
        "scope": "read",
        "id_token": "i",
    }
    tokens = TokenSet.from_response(body, now=1_000.0)
    assert tokens == TokenSet("a", "bearer", "r", 4_600.0, "read", {"id_token": "i"}, 1_000.0)
    assert TokenSet.from_dict(tokens.to_dict()) == tokens


def test_token_set_from_response_defaults() -> None:
    tokens = TokenSet.from_response({"access_token": "a"})
    assert (tokens.token_type, tokens.refresh_token, tokens.expires_at) == ("Bearer", None, None)
    assert not tokens.expires_soon()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="missing"),
        pytest.param({"access_token": None}, id="null"),
        pytest.param({"access_token": 12}, id="not-text"),
    ],
)
def test_token_set_without_access_token(body: dict[str, Any]) -> None:
    # A 200 that holds no token is the provider's odd answer, not refused credentials.
    with pytest.raises(UnexpectedResponseError, match="without an access_token"):
        TokenSet.from_response(body)


@pytest.mark.parametrize(
    ("expires_in", "soon"),
    [
        pytest.param(None, False, id="never"),
        pytest.param(3600, False, id="later"),
        pytest.param(LEEWAY_S - 1, True, id="within-leeway"),
        pytest.param(-1, True, id="expired"),
    ],
)
def test_token_set_expires_soon(expires_in: float | None, soon: bool) -> None:
    expires_at = None if expires_in is None else time.time() + expires_in
    assert TokenSet("a", expires_at=expires_at).expires_soon() is soon


def test_token_set_short_lived_token_is_not_refreshed_at_once():
    fresh = TokenSet.from_response({"access_token": "a", "expires_in": 30})
    assert not fresh.expires_soon()  # a 30 s token is good for its first 15 s
    stale = TokenSet.from_response({"access_token": "a", "expires_in": 30}, now=time.time() - 20)
    assert stale.expires_soon()
    stored = TokenSet.from_dict({"access_token": "a", "expires_at": time.time() + 30})
    assert stored.expires_soon()  # no obtained_at (older rows): the full leeway applies
