"""Looker Studio (formerly Data Studio): the reports a connected Google account can see.

The API lists asset metadata only (no pages, charts or data), so a report's link is built from
its id. Reports only: data sources are neither reports nor dashboards. Only Google Workspace or
Cloud Identity users can connect, once their admin has authorized this OAuth client id and scope
through domain-wide delegation; otherwise Google's consent fails with "Error 400: invalid_scope".

API docs: https://developers.google.com/looker-studio/integrate/api/reference
Emulator: inflow.sandbox.looker_studio
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from pydantic import Field, HttpUrl, SecretStr

from inflow.connectors.spec import (
    Action,
    Asset,
    Check,
    CheckStep,
    Connector,
    ConnectorConfig,
    Context,
    Cursor,
    Kind,
    OAuth2AuthorizationCode,
    Resolution,
    Stream,
)

API = "https://datastudio.googleapis.com"
# Google serves the whole code flow on accounts.google.com (/o/oauth2/v2/auth, and the
# /o/oauth2/token and /o/oauth2/revoke twins of oauth2.googleapis.com's), so one authUrl covers it.
ACCOUNTS = "https://accounts.google.com"
READONLY = "https://www.googleapis.com/auth/datastudio.readonly"
SEARCH = "/v1/assets:search"
REPORT_URL = "https://lookerstudio.google.com/reporting/{}"
ONE_REPORT = {"assetTypes": "REPORT", "pageSize": "1"}
KEPT = ("owner", "creator", "description", "createTime")  # not the caller's own view/edit times


class LookerStudioConfig(ConnectorConfig):
    client_id: str = Field(
        title="OAuth client ID",
        pattern=r"^\S+\.apps\.googleusercontent\.com$",
        description="A Web application client from Google Cloud Console (…apps.googleusercontent.com).",
    )
    client_secret: SecretStr = Field(title="OAuth client secret", min_length=1)
    base_url: HttpUrl = Field(default=HttpUrl(API), title="API base URL")
    auth_url: HttpUrl = Field(default=HttpUrl(ACCOUNTS), title="Google OAuth server URL")


def timestamp(value: Any) -> datetime | None:
    """Google's RFC 3339 timestamps (milli- to nanoseconds, `Z`)."""
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def report(item: Mapping[str, Any], _ctx: Context) -> Iterator[Asset]:
    yield Asset(
        external_id=item["name"],
        kind="report",
        name=item.get("title") or item["name"],  # default values are left out of Google's JSON
        url=REPORT_URL.format(item["name"]),
        updated_at=timestamp(item.get("updateTime")),
        extra={key: item[key] for key in KEPT if item.get(key)},
    )


def classify(response: Any) -> Resolution | None:
    """A token without the datastudio scope (unticked at consent) needs a new consent."""
    if response.status_code != 403:
        return None
    try:
        details = response.json()["error"].get("details") or []
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if any(d.get("reason") == "ACCESS_TOKEN_SCOPE_INSUFFICIENT" for d in details):
        message = "the Google account did not grant the Looker Studio scope: reconnect and allow it"
        return Resolution(Action.FAIL, Kind.AUTH, message)
    return None


async def list_reports(ctx: Context) -> list[CheckStep]:
    body = await ctx.get_json(SEARCH, params=ONE_REPORT)
    if body.get("assets"):
        return [CheckStep("list reports", True, "reports can be listed")]
    message = "no reports yet: only those this Google account owns or can open are listed"
    return [CheckStep("list reports", True, message)]


CONNECTOR = Connector(
    slug="looker_studio",
    title="Looker Studio",
    category="bi",
    config=LookerStudioConfig,
    auth_type="oauth2_authorization_code",
    description="Looker Studio reports of a Google Workspace account, through the Looker Studio API.",
    docs_url="https://developers.google.com/looker-studio/integrate/api",
    base_url=API,
    auth=OAuth2AuthorizationCode(
        authorize_url="{auth_url}/o/oauth2/v2/auth",
        token_url="{auth_url}/o/oauth2/token",
        revoke_url="{auth_url}/o/oauth2/revoke",
        scopes=(READONLY,),  # every scope must be in the admin's delegation entry: ask for no more
        # A refresh token only with offline access, and again on reconnect only with consent.
        authorize_params={"access_type": "offline", "prompt": "consent"},
    ),
    checks=(
        Check(SEARCH, "token valid", "Google accepted the OAuth token", ONE_REPORT),
        list_reports,
    ),
    streams=(
        Stream(
            "reports",
            SEARCH,
            records="assets",
            omits_empty=True,  # absent when nothing is found: the body is {}
            params={"assetTypes": "REPORT"},  # exactly one type per search; trashed ones excluded
            pages=Cursor("nextPageToken", "pageToken", size_param="pageSize", size=1000),
            parse=report,
            deletes=True,  # a report missing from a full listing was trashed or deleted
            fetchable=False,
        ),
    ),
    classify=classify,
)
