"""Example: a small provider of the sandbox, for trying Inflow before a real connector is set up.

API docs: the sandbox's own (`inflow sandbox`, prefix `/example`)   Emulator: inflow.sandbox.example
"""

from __future__ import annotations

from pydantic import Field, HttpUrl, SecretStr

from inflow.connectors.spec import Connector, ConnectorConfig, MetricDef


class ExampleConfig(ConnectorConfig):
    base_url: HttpUrl = Field(
        default=HttpUrl("http://127.0.0.1:8900/example"),
        title="Base URL",
        description="Root of the example API (the sandbox's /example prefix).",
    )
    api_key: SecretStr = Field(title="API key", min_length=8)
    workspace: str = Field(
        default="default",
        title="Workspace",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="Lowercase letters, digits, '-' and '_'.",
    )


CONNECTOR = Connector(
    slug="example",
    title="Example (sandbox)",
    category="analytics",
    config=ExampleConfig,
    auth_type="api_key",
    description="A sandbox provider with daily visits and signups, to see data flow end to end.",
    metrics=(
        MetricDef("visits", "Visits", "count", "Visits per day."),
        MetricDef("signups", "Signups", "count", "Signups per day."),
        MetricDef(
            "conversion_rate",
            "Conversion rate",
            "ratio",
            "Signups per visit.",
            aggregation="ratio",
            weight_metric="visits",
        ),
    ),
)
