"""Changes upstream: assets that vanish are marked deleted (kept, not dropped), come back as
updated, and a new revision of an asset is counted updated."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from inflow.storage.models import Asset
from tests.sync.helpers import create_source, person, sync_and_wait

REPORTS, DASHBOARDS = 120, 40


def _assets(factory, source_id: str) -> dict[str, Asset]:
    with factory() as session:
        rows = session.execute(select(Asset).where(Asset.source_id == uuid.UUID(source_id)))
        return {a.external_id: a for a in rows.scalars()}


def test_assets_deleted_upstream_are_marked_then_restored(client, factory, sb):
    _, headers = person(factory)
    source = create_source(client, headers)
    sb.configure(volume={"pages": 1})  # assets are the point here, not metrics
    first = sync_and_wait(client, headers, source["id"])
    assert first["status"] == "succeeded", first
    before = _assets(factory, source["id"])
    assert len(before) == REPORTS + DASHBOARDS

    sb.configure(volume={"reports": 100, "dashboards": 35})
    shrunk = sync_and_wait(client, headers, source["id"])

    assert shrunk["status"] == "succeeded", shrunk
    assert shrunk["counts"]["deleted"] == (REPORTS - 100) + (DASHBOARDS - 35)
    assert shrunk["counts"]["created"] == 0
    assert shrunk["counts"]["updated"] == 0
    after = _assets(factory, source["id"])
    assert set(after) == set(before)  # kept, not dropped
    gone = {f"rep_{n:04d}" for n in range(101, 121)} | {f"dash_{n:04d}" for n in range(36, 41)}
    assert {k for k, a in after.items() if a.deleted_at is not None} == gone
    assert all(after[k].name == before[k].name for k in gone)

    unchanged_again = sync_and_wait(client, headers, source["id"])
    assert unchanged_again["counts"]["deleted"] == 0  # already marked: not counted twice

    sb.configure(volume={"reports": REPORTS, "dashboards": DASHBOARDS})
    restored = sync_and_wait(client, headers, source["id"])

    assert restored["status"] == "succeeded", restored
    assert restored["counts"]["updated"] == len(gone)
    assert restored["counts"]["created"] == 0
    assert restored["counts"]["deleted"] == 0
    back = _assets(factory, source["id"])
    assert all(a.deleted_at is None for a in back.values())
    assert {k: a.id for k, a in back.items()} == {k: a.id for k, a in before.items()}


def test_a_new_revision_upstream_is_counted_updated(client, factory, sb):
    _, headers = person(factory)
    source = create_source(client, headers)
    sb.configure(volume={"pages": 1})
    sync_and_wait(client, headers, source["id"])
    before = _assets(factory, source["id"])

    sb.configure(volume={"revision": 1})  # every 10th report and dashboard changes
    run = sync_and_wait(client, headers, source["id"])

    assert run["status"] == "succeeded", run
    changed = {f"rep_{n:04d}" for n in range(10, 121, 10)} | {
        f"dash_{n:04d}" for n in range(10, 41, 10)
    }
    assert run["counts"]["updated"] == len(changed)
    assert run["counts"]["created"] == 0
    assert run["counts"]["deleted"] == 0
    after = _assets(factory, source["id"])
    assert {k for k in after if after[k].name != before[k].name} == changed
    assert all(after[k].name.endswith("(rev 1)") for k in changed)
    assert all(after[k].extra == {"version": 2} for k in changed)
    assert all(after[k].remote_updated_at > before[k].remote_updated_at for k in changed)


def test_an_empty_listing_marks_every_asset_deleted(client, factory, sb):
    _, headers = person(factory)
    source = create_source(client, headers)
    sb.configure(volume={"pages": 1})
    sync_and_wait(client, headers, source["id"])

    sb.configure(volume={"reports": 0, "dashboards": 0})  # everything removed upstream
    run = sync_and_wait(client, headers, source["id"])

    assert run["status"] == "succeeded", run
    assert run["counts"]["deleted"] == REPORTS + DASHBOARDS
    after = _assets(factory, source["id"])
    assert len(after) == REPORTS + DASHBOARDS
    assert all(a.deleted_at is not None for a in after.values())
