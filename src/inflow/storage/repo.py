"""Repository functions for the sync path: the one upsert path for assets and data points,
stream state, and run bookkeeping. Keyword-only arguments after the session.

Upserts compare with what is stored, so the counts are exact on every backend: a record
is *created*, *updated* (its previous data-point value kept as a revision) or *unchanged*.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Dialect, TextualSelect, bindparam, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from inflow.connectors.records import Asset, DataPoint
from inflow.storage.models import Base, StreamState, dimension_names, utcnow

ASSETS = Base.metadata.tables["assets"]
DATA_POINTS = Base.metadata.tables["data_points"]
REVISIONS = Base.metadata.tables["data_point_revisions"]
KEY_CHUNK = 400  # keys per lookup query (4 bind parameters each, well under SQLite's limit)


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0

    def add(self, other: Counts) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.deleted += other.deleted

    def as_dict(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
        }


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def upsert_data_points(
    session: Session, *, source_id: uuid.UUID, points: Sequence[DataPoint]
) -> Counts:
    """Insert new points, update changed ones (keeping the old value as a revision).

    New keys go in first with one ``executemany`` that skips stored keys (ON CONFLICT DO
    NOTHING): on a first read that is the whole batch. Only when some key was stored already
    is the batch looked up and compared; the ids generated here tell created from existing.
    """
    latest: dict[_Key, DataPoint] = {}
    dimension_keys: dict[tuple[tuple[str, str], ...], str] = {}  # a batch has few dimension sets
    for point in points:  # the last value of a key in a batch wins
        items = tuple(point.dimensions.items())
        dims = dimension_keys.get(items)
        if dims is None:
            dims = dimension_keys[items] = point.dimensions_key
        latest[(point.metric, point.granularity, point.period_start, dims)] = point
    counts = Counts()
    if not latest:
        return counts
    now = utcnow()
    keys, fresh = list(latest), list(latest.values())
    n = len(fresh)
    names = {key: dimension_names(key) for key in set(dimension_keys.values())}
    driver = _driver_insert(session.get_bind().dialect)
    ids = driver.new_ids(n)
    inserted = driver.execute(
        session,
        {
            "id": ids,
            "source_id": [source_id] * n,
            "metric": [k[0] for k in keys],
            "granularity": [k[1] for k in keys],
            "period_start": [k[2] for k in keys],
            "period_end": [p.period_end for p in fresh],
            "timezone": [p.timezone for p in fresh],
            "dimensions": [dict(p.dimensions) for p in fresh],
            "dimensions_key": [k[3] for k in keys],
            "dimension_names": [names[k[3]] for k in keys],
            "value": [p.value for p in fresh],
            "unit": [p.unit for p in fresh],
            "weight": [p.weight for p in fresh],
            "complete": [p.complete for p in fresh],
            "created_at": [now] * n,
            "updated_at": [now] * n,
        },
    )
    if inserted == n:
        counts.created = inserted
        return counts
    ours = {uuid.UUID(i) for i in ids} if driver.hex_ids else set(ids)
    existing = _stored_points(session, source_id, list(latest))
    changed: list[dict[str, Any]] = []
    revisions: list[dict[str, Any]] = []
    for key, p in latest.items():
        stored = existing[key]
        if stored.id in ours:
            counts.created += 1
        elif stored.restated_by(p):  # any field a read uses: value, weight, period end, ...
            changed.append(
                {
                    "_id": stored.id,
                    "value": p.value,
                    "complete": p.complete,
                    "weight": p.weight,
                    "period_end": p.period_end,
                    "unit": p.unit,
                    "timezone": p.timezone,
                    "updated_at": now,
                }
            )
            revisions.append(
                {
                    "data_point_id": stored.id,
                    "value": stored.value,
                    "complete": stored.complete,
                    "weight": stored.weight,
                    "period_end": stored.period_end,
                    "recorded_at": stored.updated_at,  # when the replaced value was written
                    "replaced_at": now,
                }
            )
        else:
            counts.unchanged += 1
    if changed:
        session.execute(
            update(DATA_POINTS)
            .where(DATA_POINTS.c.id == bindparam("_id"))
            .values(
                value=bindparam("value"),
                complete=bindparam("complete"),
                weight=bindparam("weight"),
                period_end=bindparam("period_end"),
                unit=bindparam("unit"),
                timezone=bindparam("timezone"),
                updated_at=bindparam("updated_at"),
            ),
            changed,
        )
        session.execute(insert(REVISIONS), revisions)
        counts.updated = len(changed)
    return counts


_Key = tuple[str, str, datetime, str]  # metric, granularity, period_start, dimensions_key
_NATURAL_KEY = ("source_id", "metric", "granularity", "period_start", "dimensions_key")


def _new_ids(count: int) -> list[uuid.UUID]:
    """``count`` random (version 4) UUIDs from one read of the OS's random source."""
    raw = os.urandom(16 * count)
    return [uuid.UUID(bytes=raw[i : i + 16], version=4) for i in range(0, 16 * count, 16)]


_V4_BYTE6 = bytes((b & 0x0F) | 0x40 for b in range(256))  # version 4
_V4_BYTE8 = bytes((b & 0x3F) | 0x80 for b in range(256))  # RFC 4122 variant


def _new_hex_ids(count: int) -> list[str]:
    """``count`` random version-4 UUIDs as the 32 hex digits SQLite stores, without building
    ``uuid.UUID`` objects (a fifth of a 100,000-point insert's Python time)."""
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = raw[6::16].translate(_V4_BYTE6)
    raw[8::16] = raw[8::16].translate(_V4_BYTE8)
    digits = raw.hex()
    return [digits[i : i + 32] for i in range(0, 32 * count, 32)]


# Bind processors run per row only for these columns; the others repeat within a batch (one
# source, a few periods, one timestamp, a dimension set per series), so each distinct value
# is processed once. A dimensions dict is unhashable: its canonical key stands in for it.
_PER_ROW = frozenset({"id", "value", "weight"})
_MEMO_KEY = {"dimensions": "dimensions_key"}


class _DriverInsert:
    """``INSERT ... ON CONFLICT (natural key) DO NOTHING`` of points, sent to the DBAPI as is.

    SQLAlchemy would run every column's bind processor on every row (UUID and datetime to
    text, dict to JSON), which costs more than SQLite's own insert; here the same processors
    run once per distinct value, and ``executemany`` gets the finished parameters.
    """

    def __init__(self, dialect: Dialect) -> None:
        make = sqlite_insert if dialect.name == "sqlite" else pg_insert  # the two backends
        compiled = (
            make(DATA_POINTS)
            .on_conflict_do_nothing(index_elements=_NATURAL_KEY)
            .compile(dialect=dialect)
        )
        self.sql = compiled.string
        self.positional = compiled.positional
        self.names = tuple(compiled.positiontup or ()) if self.positional else tuple(compiled.binds)
        # SQLite stores a UUID as its 32 hex digits: ids are made in that form directly.
        self.hex_ids = dialect.name == "sqlite"
        self.processors = [
            None
            if name == "id" and self.hex_ids
            else DATA_POINTS.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in self.names
        ]

    def new_ids(self, count: int) -> list[Any]:
        """Fresh primary keys as this backend's insert takes them."""
        return _new_hex_ids(count) if self.hex_ids else _new_ids(count)

    def execute(self, session: Session, columns: dict[str, list[Any]]) -> int:
        """Insert the rows given column by column; returns how many were new."""
        processed: list[list[Any]] = []
        for name, process in zip(self.names, self.processors, strict=True):
            values = columns[name]
            if process is not None and name in _PER_ROW:
                values = [process(v) for v in values]
            elif process is not None:
                memo: dict[Any, Any] = {}
                keys = columns[_MEMO_KEY.get(name, name)]
                values = [
                    memo[k] if k in memo else memo.setdefault(k, process(v))
                    for v, k in zip(values, keys, strict=True)
                ]
            processed.append(values)
        rows = zip(*processed, strict=True)
        params: list[Any] = (
            list(rows) if self.positional else [dict(zip(self.names, r, strict=True)) for r in rows]
        )
        result = session.connection().exec_driver_sql(
            self.sql, params, execution_options={"preserve_rowcount": True}
        )
        return int(result.rowcount)  # summed over the batch; -1 (unknown) falls back to a lookup


@lru_cache(maxsize=4)
def _driver_insert(dialect: Dialect) -> _DriverInsert:
    return _DriverInsert(dialect)


@lru_cache(maxsize=1)
def _lookup_statement() -> TextualSelect:
    """Stored points of ``KEY_CHUNK`` keys, which join as a VALUES table: one probe of the
    natural-key index each (a row IN list makes both backends scan all of a source's points).

    Plain text with bind parameters, built once: SQLAlchemy cannot cache a ``values()``
    construct, and compiling 1,600 parameters for every chunk costs more than the query.
    """
    keys = ", ".join(f"(:m{i}, :g{i}, :p{i}, :d{i})" for i in range(KEY_CHUNK))
    table = DATA_POINTS
    sql = (
        f"WITH batch_keys (metric, granularity, period_start, dimensions_key) AS (VALUES {keys}) "  # noqa: S608 (only placeholders)
        "SELECT p.id, p.metric, p.granularity, p.period_start, p.dimensions_key, p.value, "
        "p.complete, p.weight, p.period_end, p.unit, p.timezone, p.updated_at FROM batch_keys AS k JOIN data_points AS p ON p.source_id = :source_id "
        "AND p.metric = k.metric AND p.granularity = k.granularity "
        "AND p.period_start = k.period_start AND p.dimensions_key = k.dimensions_key"
    )
    return (
        text(sql)
        .bindparams(
            bindparam("source_id", type_=table.c.source_id.type),
            *(bindparam(f"p{i}", type_=table.c.period_start.type) for i in range(KEY_CHUNK)),
        )
        .columns(
            table.c.id,
            table.c.metric,
            table.c.granularity,
            table.c.period_start,
            table.c.dimensions_key,
            table.c.value,
            table.c.complete,
            table.c.weight,
            table.c.period_end,
            table.c.unit,
            table.c.timezone,
            table.c.updated_at,
        )
    )


@dataclass(frozen=True, slots=True)
class _Stored:
    """A stored point's fields that a restatement may change (its key aside)."""

    id: uuid.UUID
    value: float
    complete: bool
    weight: float | None
    period_end: datetime
    unit: str | None
    timezone: str
    updated_at: datetime

    def restated_by(self, point: DataPoint) -> bool:
        return (
            self.value != point.value
            or self.complete != point.complete
            or self.weight != point.weight
            or self.period_end != point.period_end
            or self.unit != point.unit
            or self.timezone != point.timezone
        )


def _stored_points(
    session: Session, source_id: uuid.UUID, keys: Sequence[_Key]
) -> dict[_Key, _Stored]:
    """The stored points among ``keys``."""
    found: dict[_Key, _Stored] = {}
    statement = _lookup_statement()
    for chunk in _chunks(keys, KEY_CHUNK):
        padded = [*chunk, *[chunk[-1]] * (KEY_CHUNK - len(chunk))]  # one statement for all
        params: dict[str, Any] = {"source_id": source_id}
        for i, (metric, granularity, start, dims) in enumerate(padded):
            params[f"m{i}"], params[f"g{i}"] = metric, granularity
            params[f"p{i}"], params[f"d{i}"] = start, dims
        for row in session.execute(statement, params):
            found[(row.metric, row.granularity, row.period_start, row.dimensions_key)] = _Stored(
                row.id,
                row.value,
                row.complete,
                row.weight,
                row.period_end,
                row.unit,
                row.timezone,
                row.updated_at,
            )
    return found


def asset_hash(asset: Asset) -> str:
    payload = orjson.dumps(
        [
            asset.kind,
            asset.name,
            asset.url,
            asset.embed_url,
            asset.folder,
            asset.updated_at.isoformat() if asset.updated_at else None,
            dict(asset.extra),
        ],
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(payload).hexdigest()


def upsert_assets(
    session: Session,
    *,
    source_id: uuid.UUID,
    space_id: uuid.UUID | None,
    assets: Sequence[Asset],
    seen_at: datetime,
) -> tuple[Counts, list[tuple[uuid.UUID, str]]]:
    """Upsert reports/dashboards; returns the counts and ``(id, "created"|"updated")`` changes."""
    latest = {a.external_id: a for a in assets}
    counts = Counts()
    changes: list[tuple[uuid.UUID, str]] = []
    if not latest:
        return counts, changes
    table = ASSETS
    existing = {
        row.external_id: row
        for chunk in _chunks(list(latest), KEY_CHUNK)
        for row in session.execute(
            select(
                table.c.id,
                table.c.external_id,
                table.c.content_hash,
                table.c.deleted_at,
                table.c.space_id,
            ).where(table.c.source_id == source_id, table.c.external_id.in_(chunk))
        )
    }
    now = utcnow()
    for external_id, a in latest.items():
        digest = asset_hash(a)
        values = {
            "kind": a.kind,
            "name": a.name,
            "url": a.url,
            "embed_url": a.embed_url,
            "folder": a.folder,
            "extra": dict(a.extra),
            "content_hash": digest,
            "remote_updated_at": a.updated_at,
            "last_seen_at": seen_at,
            "deleted_at": None,
        }
        row = existing.get(external_id)
        if row is None:
            new_id = uuid.uuid4()
            session.execute(
                insert(table).values(
                    id=new_id,
                    source_id=source_id,
                    space_id=space_id,
                    external_id=external_id,
                    created_at=now,
                    updated_at=now,
                    **values,
                )
            )
            counts.created += 1
            changes.append((new_id, "created"))
        elif row.content_hash != digest or row.deleted_at is not None or row.space_id != space_id:
            session.execute(
                update(table)
                .where(table.c.id == row.id)
                .values(updated_at=now, space_id=space_id, **values)
            )
            counts.updated += 1
            changes.append((row.id, "updated"))
        else:
            session.execute(update(table).where(table.c.id == row.id).values(last_seen_at=seen_at))
            counts.unchanged += 1
    return counts, changes


def mark_unseen_assets_deleted(
    session: Session, *, source_id: uuid.UUID, kinds: Sequence[str], seen_since: datetime
) -> int:
    """Assets of ``kinds`` not seen since ``seen_since`` vanished upstream: mark them deleted."""
    table = ASSETS
    result = session.execute(
        update(table)
        .where(
            table.c.source_id == source_id,
            table.c.kind.in_(kinds),
            table.c.deleted_at.is_(None),
            (table.c.last_seen_at.is_(None)) | (table.c.last_seen_at < seen_since),
        )
        .values(deleted_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def load_states(session: Session, *, source_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    """Every stream's state of a source, by stream (one query: a run reads them as it starts)."""
    rows = session.execute(
        select(StreamState.stream, StreamState.state).where(StreamState.source_id == source_id)
    )
    return {row.stream: dict(row.state) for row in rows}


def save_state(
    session: Session, *, source_id: uuid.UUID, stream: str, state: dict[str, Any]
) -> dict[str, Any]:
    """Store a stream's state; a cursor never moves backwards."""
    row = session.get(StreamState, (source_id, stream))
    if row is None:
        session.add(
            StreamState(source_id=source_id, stream=stream, state=state, updated_at=utcnow())
        )
        return state
    old, new = row.state.get("cursor"), state.get("cursor")
    if isinstance(old, str) and isinstance(new, str) and new < old:
        state = {**state, "cursor": old}  # ISO-8601 UTC strings compare in time order
    row.state = state
    row.updated_at = utcnow()
    return state
