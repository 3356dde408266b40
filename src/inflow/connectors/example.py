"""Example: the sandbox's own small analytics + BI provider, to see data flow end to end.

Reports (page numbers), dashboards (offsets), daily metrics per page (page tokens, incremental
by date). ``example_oauth`` is the same API behind OAuth (authorization code + PKCE).

API docs: the sandbox (`inflow sandbox`, prefix `/example`)   Emulator: inflow.sandbox.example
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from pydantic import Field, HttpUrl, SecretStr

from inflow.connectors.spec import (
    Asset,
    Bearer,
    Check,
    Connector,
    ConnectorConfig,
    Context,
    Cursor,
    DataPoint,
    Incremental,
    MetricDef,
    OAuth2AuthorizationCode,
    Offset,
    PageNumber,
    RateLimit,
    Stream,
    today_ordinal,
)

SANDBOX = "http://127.0.0.1:8900/example"


class ExampleConfig(ConnectorConfig):
    base_url: HttpUrl = Field(default=HttpUrl(SANDBOX), title="Base URL")
    api_key: SecretStr = Field(title="API key", min_length=8)
    workspace: str = Field(
        default="default",
        title="Workspace",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="Lowercase letters, digits, '-' and '_'.",
    )


class ExampleOAuthConfig(ConnectorConfig):
    base_url: HttpUrl = Field(default=HttpUrl(SANDBOX), title="Base URL")
    auth_url: HttpUrl = Field(default=HttpUrl(SANDBOX), title="Authorization server URL")
    client_id: str = Field(title="OAuth client id", min_length=1)
    client_secret: SecretStr = Field(title="OAuth client secret", min_length=1)


def asset(item: Mapping[str, Any], _ctx: Context) -> Iterator[Asset]:
    yield Asset(
        external_id=item["id"],
        kind=item["kind"],
        name=item["title"],
        url=item.get("url"),
        embed_url=item.get("embed_url"),
        folder=item.get("folder"),
        updated_at=datetime.fromisoformat(item["updated_at"].replace("Z", "+00:00")),
        extra={"version": item.get("version")},
    )


@lru_cache(maxsize=128)
def _day(text: str, today: int) -> tuple[datetime, datetime, bool]:
    """A day's UTC bounds, and whether it is over (today's numbers are partial, restated later).
    A listing repeats each date for every page: parsed once per date (and per ``today``)."""
    day = date.fromisoformat(text)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1), day.toordinal() < today


def daily(row: Mapping[str, Any], _ctx: Context) -> Iterator[DataPoint]:
    start, end, complete = _day(row["date"], today_ordinal())
    dims = {"page": row["page"]}
    yield DataPoint("visits", float(row["visits"]), start, end, dimensions=dims, complete=complete)
    yield DataPoint(
        "signups", float(row["signups"]), start, end, dimensions=dims, complete=complete
    )


STREAMS = (
    Stream(
        "reports",
        "/v1/reports",
        records="data",
        parse=asset,
        deletes=True,
        fetchable=False,
        pages=PageNumber(param="page", size_param="per_page", size=100, total_path="meta.total"),
    ),
    Stream(
        "dashboards",
        "/v1/dashboards",
        records="items",
        parse=asset,
        deletes=True,
        fetchable=False,
        pages=Offset(param="offset", limit_param="limit", limit=100, total_path="total"),
    ),
    Stream(
        "metrics",
        "/v1/metrics",
        records="rows",
        parse=daily,
        pages=Cursor(
            token_path="next_page_token", param="page_token", size_param="page_size", size=5000
        ),
        incremental=Incremental(
            cursor="date",
            start_param="start_date",
            end_param="end_date",
            format="date",
            end_inclusive=True,
            lookback=timedelta(days=2),
            initial=timedelta(days=30),
        ),
    ),
)
METRICS = (
    MetricDef("visits", "Visits", "count", "Visits per day and page."),
    MetricDef("signups", "Signups", "count", "Signups per day and page."),
)
CHECKS = (
    Check("/v1/me", "authenticated", "the API key was accepted"),
    Check("/v1/reports", "list reports", "reports can be listed", params={"per_page": "1"}),
)

CONNECTOR = Connector(
    slug="example",
    title="Example (sandbox)",
    category="analytics",
    config=ExampleConfig,
    auth_type="api_key",
    description="A sandbox provider with reports, dashboards and daily metrics.",
    metrics=METRICS,
    base_url=SANDBOX,
    auth=Bearer("{config.api_key}"),
    checks=CHECKS,
    streams=STREAMS,
    rate_limit=RateLimit.of("50/second"),
)

OAUTH_CONNECTOR = Connector(
    slug="example_oauth",
    title="Example with OAuth (sandbox)",
    category="analytics",
    config=ExampleOAuthConfig,
    auth_type="oauth2_authorization_code",
    description="The example provider behind OAuth 2 (authorization code + PKCE, refresh).",
    metrics=METRICS,
    base_url=SANDBOX,
    auth=OAuth2AuthorizationCode(
        authorize_url="{auth_url}/oauth/authorize",
        token_url="{auth_url}/oauth/token",
        revoke_url="{auth_url}/oauth/revoke",
        scopes=("reports.read", "metrics.read"),
    ),
    checks=(Check("/v1/me", "authenticated", "the OAuth access token was accepted"),),
    streams=STREAMS,
    rate_limit=RateLimit.of("50/second"),
)
