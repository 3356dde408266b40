"""ringcentral (RingCentral's Python SDK) against the RingCentral emulator.

It exercises: `SDK(client_id, secret, server)` with the sandbox as its `server`, `platform.login(
jwt=...)` (the JWT-bearer grant, Basic client auth), `platform.get()` on the company call log,
the pages followed by the `navigation.nextPage.uri` it is given (the SDK has no paginator of its
own: absolute URIs are its hook), the account as one object, and `ApiException` carrying the
`ApiResponse` for a refused JWT (400 `invalid_grant`, an `OAU-` code in `errors[]`),
a call log past the Heavy group's limit (429 `CMN-301`, with `Retry-After` and the group's
`X-Rate-Limit-*` headers) and an unknown route (404 `AGW-404`). The daily numbers computed from
what it reads equal the points Inflow stores for the same days.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from ringcentral import SDK
from ringcentral.http.api_exception import ApiException

from inflow.connectors import registry
from inflow.connectors.ringcentral import CONNECTOR
from inflow.sandbox.ringcentral import ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET, OAUTH, USER_CLIENT_ID
from tests.conformance.conftest import LiveSandbox
from tests.providers import calling
from tests.providers.test_ringcentral import compress, expected

SLUG = "ringcentral"
CALL_LOG = "/restapi/v1.0/account/~/call-log"
HEAVY = "GET /restapi/v1.0/account/{account_id}/call-log"


def platform(url: str, jwt: str) -> Any:
    rc = SDK(CLIENT_ID, CLIENT_SECRET, url)
    rc.platform().login(jwt=jwt)
    return rc.platform()


def test_the_sdk_reads_what_inflow_stores(
    live: LiveSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RingCentral's 60 s rate windows, and Inflow's declared budget, 60 times shorter
    # (as tests/providers/test_ringcentral.py compresses them): real limits, a short test.
    live.configure(SLUG, volume={"calls": 400, "days": 4, "rateWindowS": 1})
    fast = replace(CONNECTOR, rate_limit=compress(CONNECTOR.rate_limit, 60))
    monkeypatch.setitem(registry(), SLUG, fast)
    config = live.credentials(SLUG)["config"]
    api = platform(config["baseUrl"], config["jwt"])
    today = live.today
    first, last = today - timedelta(days=3), today - timedelta(days=1)

    account = api.get("/restapi/v1.0/account/~").json_dict()
    assert (account["id"], account["status"]) == (ACCOUNT_ID, "Confirmed")
    params = {
        "dateFrom": f"{first.isoformat()}T00:00:00.000Z",
        "dateTo": f"{today.isoformat()}T00:00:00.000Z",
        "type": "Voice",
        "view": "Simple",
        "perPage": 100,
    }
    body = api.get(CALL_LOG, params).json_dict()
    rows: list[dict[str, Any]] = body["records"]
    pages = 1
    while "nextPage" in body["navigation"]:
        body = api.get(body["navigation"]["nextPage"]["uri"]).json_dict()
        rows += body["records"]
        pages += 1
    assert pages == (len(rows) + 99) // 100 >= 2
    assert live.stats(SLUG)["byEndpoint"][HEAVY] == pages
    read = expected(rows, first, last)

    source_id = live.sync("calling", config)
    calling.assert_same(calling.stored(live.factory, str(source_id), first=first, last=last), read)


def test_errors_are_api_exceptions_with_ringcentrals_codes(live: LiveSandbox) -> None:
    config = live.credentials(SLUG)["config"]

    with pytest.raises(ApiException) as refused:
        platform(config["baseUrl"], OAUTH.jwt_credential(USER_CLIENT_ID))  # another app's JWT
    reply = refused.value.api_response().json_dict()
    assert refused.value.api_response().response().status_code == 400
    assert reply["error"] == "invalid_grant"
    assert reply["errors"][0]["errorCode"].startswith("OAU-")

    api = platform(config["baseUrl"], config["jwt"])
    live.configure(SLUG, volume={"rateWindowS": 60})
    for _ in range(10):  # the Heavy group allows 10 a window
        api.get(CALL_LOG, {"perPage": 1})
    with pytest.raises(ApiException) as limited:
        api.get(CALL_LOG, {"perPage": 1})
    response = limited.value.api_response().response()
    assert response.status_code == 429
    assert limited.value.api_response().json_dict()["errorCode"] == "CMN-301"
    assert response.headers["X-Rate-Limit-Group"] == "Heavy"
    assert int(response.headers["Retry-After"]) > 0

    with pytest.raises(ApiException) as unknown:
        api.get("/restapi/v1.0/account/~/no-such-resource")
    assert unknown.value.api_response().response().status_code == 404
    assert unknown.value.api_response().json_dict()["errorCode"] == "AGW-404"
