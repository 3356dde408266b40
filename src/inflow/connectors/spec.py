"""The declarative vocabulary of connectors.

| name | what it declares |
|---|---|
| `Connector` | identity (slug, title, category, docs), `Config` model, auth scheme, metric catalog |
| `ConnectorConfig` | base of every connector's config: camelCase JSON, secrets as `SecretStr` |
| `MetricDef` | one metric the provider really serves: key, label, unit, aggregation rule |

A connector module holds one `CONNECTOR = Connector(...)` literal and a few small functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr
from pydantic.alias_generators import to_camel

Category = Literal["bi", "analytics", "social", "calling"]
AuthType = Literal[
    "api_key",
    "bearer",
    "basic",
    "oauth2_client_credentials",
    "oauth2_authorization_code",
    "oauth2_jwt",
    "none",
]
Aggregation = Literal["sum", "average", "ratio", "last", "max", "min"]


class ConnectorConfig(BaseModel):
    """Base of every connector's config.

    JSON keys are camelCase (``baseUrl``); unknown keys are refused so a typo names its field.
    Fields typed ``SecretStr`` are stored encrypted and never echoed back.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_strip_whitespace=True
    )

    @classmethod
    def secret_fields(cls) -> list[str]:
        """The JSON (camelCase) names of the secret fields."""
        names: list[str] = []
        for name, info in cls.model_fields.items():
            annotation: object = info.annotation
            if annotation is SecretStr or SecretStr in getattr(annotation, "__args__", ()):
                names.append(info.alias if info.alias else name)
        return names


@dataclass(frozen=True)
class MetricDef:
    """A metric in a connector's catalog.

    ``aggregation`` says how values combine across periods and dimensions: ``sum`` for counts;
    ``average``/``ratio`` are weighted by ``weight_metric`` (never summed).
    """

    key: str
    label: str
    unit: str = "count"
    description: str = ""
    aggregation: Aggregation = "sum"
    weight_metric: str | None = None


@dataclass(frozen=True)
class Connector:
    """A provider, declared: identity, config model, auth scheme and metric catalog."""

    slug: str
    title: str
    category: Category
    config: type[ConnectorConfig]
    auth_type: AuthType
    description: str = ""
    docs_url: str = ""
    metrics: tuple[MetricDef, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def config_schema(self) -> dict[str, Any]:
        """The JSON Schema of ``Config`` by alias: secrets are ``writeOnly`` passwords."""
        return self.config.model_json_schema(by_alias=True)

    def metric(self, key: str) -> MetricDef | None:
        return next((m for m in self.metrics if m.key == key), None)
