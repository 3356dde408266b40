"""The connector registry: built-in connectors plus those installed through the
``inflow.connectors`` entry-point group (a third party adds one by installing a package)."""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points

from inflow.connectors import (
    aircall,
    calling,
    custom,
    example,
    grafana,
    instagram,
    linkedin,
    looker_studio,
    microsoft_clarity,
    powerbi,
    ringcentral,
    twilio,
)
from inflow.connectors.spec import Connector
from inflow.logging import get_logger

# The calling platforms, each shown as the API's `calling` type with its `platform`.
CALLING: tuple[Connector, ...] = (
    aircall.CONNECTOR,
    ringcentral.CONNECTOR,
    custom.CONNECTOR,
    twilio.CONNECTOR,
)
BUILTIN: tuple[Connector, ...] = (
    calling.family(*CALLING),
    *CALLING,
    example.CONNECTOR,
    example.OAUTH_CONNECTOR,
    grafana.CONNECTOR,
    instagram.CONNECTOR,
    linkedin.CONNECTOR,
    looker_studio.CONNECTOR,
    microsoft_clarity.CONNECTOR,
    powerbi.CONNECTOR,
)
log = get_logger(__name__)


@lru_cache
def registry() -> dict[str, Connector]:
    """Every connector by slug; a broken third-party package is logged and skipped."""
    found = {c.slug: c for c in BUILTIN}
    for ep in entry_points(group="inflow.connectors"):
        try:
            connector = ep.load()
        except Exception:  # a third party's import error must not take Inflow down
            log.exception("connector entry point failed to load", entry_point=ep.name)
            continue
        if not isinstance(connector, Connector):
            log.warning("entry point is not a Connector", entry_point=ep.name)
            continue
        found.setdefault(connector.slug, connector)
    return found


def get_connector(slug: str) -> Connector | None:
    return registry().get(slug)


def listed() -> list[Connector]:
    """The integration types the API shows: a family's members appear through the family."""
    return sorted((c for c in registry().values() if c.family is None), key=lambda c: c.slug)
