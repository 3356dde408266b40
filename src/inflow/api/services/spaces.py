"""A space's items: the reports, dashboards and folders its installations synced, each once.

Two installations of one provider account (a connector's ``account`` of their configs, the
same Grafana instance or Power BI tenant, refined by the ``orgId`` their items carry: the same
Grafana organization) sync the same items into a space; the
space lists each item once, as the row its first installation stored, with every installation
that synced it. A dashboard's ``folderId`` and a folder's ``parent`` name those items.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from inflow.api.schemas import AssetPublic, InstallationRef
from inflow.connectors import get_connector
from inflow.storage.models import Asset, DataSource

# (service, account, external id): one item of a provider account
ItemKey = tuple[str, str, str]


def account_of(service_id: str, source_id: uuid.UUID, config: Mapping[str, Any]) -> str:
    """The provider account a source reads, or the source itself when that is not known."""
    connector = get_connector(service_id)
    found = connector.account(config) if connector and connector.account else None
    return found or f"source:{source_id}"


def list_space_items(session: Session, *, space_id: uuid.UUID) -> list[AssetPublic]:
    """The space's live items by name, one per provider item (deleted ones left out)."""
    rows = session.execute(
        select(Asset, DataSource.type, DataSource.name, DataSource.config)
        .join(DataSource, DataSource.id == Asset.source_id)
        .where(Asset.space_id == space_id, Asset.deleted_at.is_(None))
        .order_by(Asset.created_at, Asset.source_id)  # the first installation's row leads
    ).all()
    orgs: dict[uuid.UUID, Any] = {}
    for row in rows:
        org = (row[0].extra or {}).get("orgId")
        if org is not None:
            orgs.setdefault(row[0].source_id, org)
    accounts: dict[uuid.UUID, str] = {}
    groups: dict[ItemKey, list[tuple[Asset, str, str]]] = {}
    for row in rows:
        asset: Asset = row[0]
        service, source_name, config = str(row[1]), str(row[2]), row[3]
        if asset.source_id not in accounts:
            account = account_of(service, asset.source_id, config or {})
            if service == "grafana":  # an org of the instance, known from what it synced
                org = orgs.get(asset.source_id)
                account = f"{account}#org={org}" if org is not None else f"source:{asset.source_id}"
            accounts[asset.source_id] = account
        key = (service, accounts[asset.source_id], asset.external_id)
        groups.setdefault(key, []).append((asset, service, source_name))
    ids = {key: group[0][0].id for key, group in groups.items()}

    def item_id(service: str, account: str, uid: Any) -> uuid.UUID | None:
        return ids.get((service, account, str(uid))) if uid else None

    items: list[AssetPublic] = []
    for (service, account, _), group in groups.items():
        a = group[0][0]
        extra = a.extra or {}
        version = extra.get("version")
        items.append(
            AssetPublic(
                id=a.id,
                source_id=a.source_id,
                service_id=service,
                external_id=a.external_id,
                name=a.name,
                kind=a.kind,
                # links from whichever installation has them (a public-link one has none)
                url=next((r.url for r, _, _ in group if r.url), None),
                embed_url=next((r.embed_url for r, _, _ in group if r.embed_url), None),
                folder=a.folder,
                updated_at=a.updated_at,
                folder_id=item_id(service, account, extra.get("folderUid")),
                parent=item_id(service, account, extra.get("parentUid")),
                version=version if isinstance(version, int) else None,
                remote_updated_at=a.remote_updated_at,
                installations=sorted(
                    (InstallationRef(source_id=r.source_id, name=name) for r, _, name in group),
                    key=lambda i: (i.name.lower(), str(i.source_id)),
                ),
            )
        )
    items.sort(key=lambda i: (i.name, str(i.id)))
    return items
