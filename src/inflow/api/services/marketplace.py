"""The Marketplace catalog: every connector of category ``bi`` is a plugin."""

from __future__ import annotations

from typing import Any

from inflow.api.schemas import Schema
from inflow.connectors import registry
from inflow.connectors.spec import Connector
from inflow.errors import NotFoundError


class PluginPublic(Schema):
    service_id: str
    title: str
    description: str
    auth_types: list[str]
    access_types: list[str] | None = None


def _access_types(connector: Connector) -> list[str] | None:
    """The values of the config's ``accessType`` field (Power BI: api, sdk, embed, public)."""
    schema = connector.config_schema()
    field: dict[str, Any] | None = schema.get("properties", {}).get("accessType")
    if field is None:
        return None
    ref = field.get("$ref") or next(
        (option["$ref"] for option in field.get("anyOf", []) if "$ref" in option), None
    )
    if ref:
        field = schema.get("$defs", {}).get(ref.rsplit("/", 1)[-1], {})
    values = field.get("enum") if field else None
    return [str(v) for v in values] if values else None


def plugin_public(connector: Connector) -> PluginPublic:
    auth_types = connector.extra.get("auth_types") or [connector.auth_type]
    return PluginPublic(
        service_id=connector.slug,
        title=connector.title,
        description=connector.description,
        auth_types=list(auth_types),
        access_types=_access_types(connector),
    )


def list_plugins() -> list[PluginPublic]:
    return [plugin_public(c) for c in registry().values() if c.category == "bi"]


def require_plugin(service_id: str) -> Connector:
    connector = registry().get(service_id)
    if connector is None or connector.category != "bi":
        raise NotFoundError(f"no Marketplace plugin {service_id!r}")
    return connector
