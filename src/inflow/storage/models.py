"""SQLAlchemy 2 typed models. UUID primary keys, UTC-aware datetimes, JSON where shapes vary."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


def dimension_names(dimensions_key: str) -> str:
    """The names of a point's dimensions, from its canonical key (``k1=v1&k2=v2`` →
    ``k1&k2``; ``""`` for a total): which breakdown a point belongs to. Names and values are
    percent-encoded in the key, so ``&`` and ``=`` only ever separate them."""
    if not dimensions_key:
        return ""
    return "&".join(part.partition("=")[0] for part in dimensions_key.split("&"))


def _names_default(context: Any) -> str:
    return dimension_names(context.get_current_parameters().get("dimensions_key") or "")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC-aware one is required")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), uuid.UUID: Uuid()}


class Role(enum.StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


class SpaceRole(enum.StrEnum):
    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"


class HealthStatus(enum.StrEnum):
    UNKNOWN = "unknown"
    OK = "ok"
    FAILING = "failing"
    NEEDS_REAUTH = "needs_reauth"


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # The process running it stopped (killed, crashed or shut down): nothing failed upstream,
    # and the next run resumes from the checkpoint the interrupted one committed.
    INTERRUPTED = "interrupted"


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.MEMBER)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """An API token (``kind=api``) or a login session token (``kind=session``), stored hashed."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="api")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship(lazy="joined")


class Space(Base):
    __tablename__ = "spaces"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SpaceMembership(Base):
    __tablename__ = "space_memberships"

    space_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("spaces.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16), default=SpaceRole.VIEWER)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DataSource(Base):
    """A configured connection to a provider. Secrets live encrypted in ``secrets``, apart."""

    __tablename__ = "data_sources"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(64), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secrets: Mapped[str | None] = mapped_column(Text, default=None)  # vault ciphertext (JSON)
    secret_names: Mapped[list[str]] = mapped_column(JSON, default=list)  # which secrets are set
    tokens: Mapped[str | None] = mapped_column(Text, default=None)  # vault ciphertext (OAuth)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    space_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("spaces.id", ondelete="SET NULL"), index=True, default=None
    )
    schedule: Mapped[str | None] = mapped_column(String(100), default=None)
    health_status: Mapped[str] = mapped_column(String(16), default=HealthStatus.UNKNOWN)
    health_checked_at: Mapped[datetime | None] = mapped_column(default=None)
    health_message: Mapped[str | None] = mapped_column(Text, default=None)
    # Failures that get attention (sync/attention.py): syncs failed in a row, the pause after
    # too many (the scheduler skips a paused source until a person resumes it), and when a run
    # last stored new or changed data (freshness).
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    paused_at: Mapped[datetime | None] = mapped_column(default=None)
    paused_reason: Mapped[str | None] = mapped_column(Text, default=None)
    data_advanced_at: Mapped[datetime | None] = mapped_column(default=None)
    next_run_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Asset(Base):
    """A report or dashboard synced from a BI provider."""

    __tablename__ = "assets"
    __table_args__ = (UniqueConstraint("source_id", "external_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("data_sources.id", ondelete="CASCADE"))
    space_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("spaces.id", ondelete="SET NULL"), index=True, default=None
    )
    external_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(500))
    url: Mapped[str | None] = mapped_column(Text, default=None)
    embed_url: Mapped[str | None] = mapped_column(Text, default=None)
    folder: Mapped[str | None] = mapped_column(String(500), default=None)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    remote_updated_at: Mapped[datetime | None] = mapped_column(default=None)
    last_seen_at: Mapped[datetime | None] = mapped_column(default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DataPoint(Base):
    """One metric value for one period; the natural key makes every write an idempotent upsert."""

    __tablename__ = "data_points"
    __table_args__ = (
        UniqueConstraint(
            "source_id",
            "metric",
            "granularity",
            "period_start",
            "dimensions_key",
            name="uq_data_points_natural_key",
        ),
        Index("ix_data_points_metric_period", "metric", "period_start"),
        # a series: one user's sources, one metric, a range of periods (migration 0005)
        Index("ix_data_points_source_metric_period", "source_id", "metric", "period_start"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("data_sources.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(128))
    granularity: Mapped[str] = mapped_column(String(16), default="day")
    period_start: Mapped[datetime] = mapped_column()
    period_end: Mapped[datetime] = mapped_column()
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    dimensions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dimensions_key: Mapped[str] = mapped_column(String(512), default="")
    # the breakdown the point belongs to (``dimension_names``), so a series can add a stored
    # period's points up in the database; null only for a point stored before migration 0009
    # was complete (then the series reads every point)
    dimension_names: Mapped[str | None] = mapped_column(String(512), default=_names_default)
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str | None] = mapped_column(String(32), default=None)
    weight: Mapped[float | None] = mapped_column(Float, default=None)
    complete: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DataPointRevision(Base):
    """A previous value of a data point that a later sync restated."""

    __tablename__ = "data_point_revisions"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    data_point_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("data_points.id", ondelete="CASCADE"), index=True
    )
    value: Mapped[float] = mapped_column(Float)
    complete: Mapped[bool] = mapped_column(Boolean)
    # the replaced weight and period end (null in revisions written before they were kept)
    weight: Mapped[float | None] = mapped_column(Float, default=None)
    period_end: Mapped[datetime | None] = mapped_column(default=None)
    recorded_at: Mapped[datetime] = mapped_column()
    replaced_at: Mapped[datetime] = mapped_column(default=utcnow)


class Experiment(Base):
    """A test (experiment): a change whose effect on metrics is measured."""

    __tablename__ = "tests"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    space_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("spaces.id", ondelete="SET NULL"), default=None
    )
    name: Mapped[str] = mapped_column(String(200))
    hypothesis: Mapped[str | None] = mapped_column(Text, default=None)
    metric: Mapped[str | None] = mapped_column(String(128), default=None)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date, default=None)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    # what the change did not touch: {"metric", "sourceId", "dimensions"} (any of them)
    control: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # [{"metric", "badDirection": "increase" | "decrease", "tolerance": 0.05}]
    guardrails: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ExperimentDataPoint(Base):
    __tablename__ = "test_data_points"

    test_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tests.id", ondelete="CASCADE"), primary_key=True
    )
    data_point_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("data_points.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CustomMetric(Base):
    """A user's metric defined as a formula over other metric keys (``clicks / impressions``)."""

    __tablename__ = "custom_metrics"
    __table_args__ = (UniqueConstraint("owner_id", "key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(128))
    label: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(32), default="ratio")
    formula: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class QuotaUsage(Base):
    """Calls spent against a provider's per-period quota (Clarity: export calls per project
    per day), shared by every process on this database."""

    __tablename__ = "quota_usage"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)  # "<slug>:<account>"
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookEvent(Base):
    """An event a provider pushed, kept so the same event id is refused as a replay."""

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("source_id", "event_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("data_sources.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class SyncRun(Base):
    __tablename__ = "sync_runs"
    __table_args__ = (
        # One queued or running run per source, enforced by the database on every backend.
        Index(
            "uq_sync_runs_one_active",
            "source_id",
            unique=True,
            sqlite_where=text("status IN ('queued', 'running')"),
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    source_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("data_sources.id", ondelete="CASCADE"), index=True
    )
    trigger: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.QUEUED)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    waiting: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    timeline: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    # The process running it, ``host:pid:token`` (engine.process_owner): a process on the
    # same host that is gone has left its run for good, whatever its lease says.
    owner: Mapped[str | None] = mapped_column(String(255), default=None)
    # A scheduled run's slot (the time its source was due): one created well after it is late
    # (its workers were down), and says so (``scheduler.LATE_AFTER``).
    scheduled_for: Mapped[datetime | None] = mapped_column(default=None)


class Backfill(Base):
    """A past date range of a source read again, in chunks that are jobs of their own
    (``sync/backfill.py``): resumable, since each chunk's state is kept."""

    __tablename__ = "backfills"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    source_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("data_sources.id", ondelete="CASCADE"), index=True
    )
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)  # included
    # queued | running | waiting | succeeded | failed | cancelled
    state: Mapped[str] = mapped_column(String(16), default="queued")
    created_by: Mapped[str | None] = mapped_column(String(320), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    waiting: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    chunks: Mapped[list[BackfillChunk]] = relationship(
        order_by="BackfillChunk.seq", cascade="all, delete-orphan", lazy="selectin"
    )


class BackfillChunk(Base):
    """One chunk of a backfill: a window of the source's days; ``done`` is never read again."""

    __tablename__ = "backfill_chunks"

    backfill_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("backfills.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    start: Mapped[datetime] = mapped_column()
    end: Mapped[datetime] = mapped_column()
    # pending | running | done | failed | cancelled
    state: Mapped[str] = mapped_column(String(16), default="pending")
    points: Mapped[int] = mapped_column(Integer, default=0)  # created + updated
    run_id: Mapped[uuid.UUID | None] = mapped_column(default=None)  # the run that held the source
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class StreamState(Base):
    __tablename__ = "stream_states"

    source_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("data_sources.id", ondelete="CASCADE"), primary_key=True
    )
    stream: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Append-only audit log; each event carries the hash of the previous one."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str | None] = mapped_column(String(320), default=None, index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(255), default=None)
    outcome: Mapped[str] = mapped_column(String(16))
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The chain's tip: one row, updated first on every append so appends serialize on any backend."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class OAuthState(Base):
    """A pending authorization-code flow: single-use, expiring, bound to a source and a user."""

    __tablename__ = "oauth_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("data_sources.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code_verifier: Mapped[str] = mapped_column(Text)  # vault ciphertext
    redirect_uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)
