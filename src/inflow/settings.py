"""Service settings: the ``INFLOW_*`` environment variables of API.md, loaded once."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# bench/scale, embedded on SQLite, this 2-core host: one process tops out near 14 syncs/s (CPU).
# With 50 ms and 250 ms per provider request, 300 sources: 32 at once keep that rate (13.7-14.2
# /s, as uncapped), a run lasting ~2 s instead of 15-16 s, CPU per sync 38-40 ms instead of
# 52-53; 16 is just enough at 250 ms. 1,000 sources: 13.8 syncs/s, 237 MB peak RSS.
EMBEDDED_CONCURRENCY = 32


def _default_data_dir() -> Path:
    return Path.home() / ".inflow"


class Settings(BaseSettings):
    """Service configuration (not connector configuration)."""

    model_config = SettingsConfigDict(env_prefix="INFLOW_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None
    secret_key: SecretStr | None = None
    redis_url: str | None = None
    allow_private_urls: bool = False
    # The address providers and browsers reach Inflow at (behind a proxy): webhook URLs shown
    # on sources and checked against providers' signatures (Twilio signs the URL it calls).
    public_url: str | None = None

    log_level: str = "INFO"
    log_format: str = "auto"  # auto | console | json

    max_body_bytes: int = 1_048_576
    session_ttl_s: int = 12 * 3600

    rate_limit_default: str = "300/minute"
    # Login: every attempt per address; failures per account from addresses it was never
    # signed in from; per account and address, a wait doubling from login_backoff_s after
    # login_free_failures failures (a success resets it). See api/ratelimit.py.
    rate_limit_login_ip: str = "20/minute"
    rate_limit_login_account: str = "100/hour"
    login_free_failures: int = 5
    login_backoff_s: float = 2.0
    login_backoff_max_s: int = 900
    login_known_days: int = 30
    trust_forwarded_for: bool = False
    # embedded: syncs run inside the API process; external: `inflow worker` processes run them
    worker: Literal["embedded", "external"] = "embedded"
    # Embedded mode: syncs (and backfill chunks) the API process runs at once; more stay
    # queued and start, in the order they were submitted, as running ones end. A sync mostly
    # waits on its provider, so a few dozen keep one process busy (bench/scale).
    embedded_concurrency: int = Field(default=EMBEDDED_CONCURRENCY, ge=1, le=1000)

    # Requests that may use the database at once, per API process; more wait their turn. The
    # pool holds this many connections plus the embedded worker's, and the thread limiter
    # (FastAPI's threadpool) this many threads plus some for routes that need no database.
    db_concurrency: int = Field(default=20, ge=1, le=500)

    http_connect_timeout_s: float = 10.0
    http_read_timeout_s: float = 60.0

    # Failures that get attention (docs/alerts.md): a source failing this many syncs in a row
    # is paused until a person resumes it; the alert webhook hears of a source's first failure,
    # its pause and its recovery, each POST signed with the secret (HMAC-SHA256).
    pause_after_failures: int = Field(default=5, ge=1, le=1000)
    alert_webhook_url: str | None = None
    alert_webhook_secret: SecretStr | None = None

    @model_validator(mode="after")
    def _alerts_are_signed(self) -> Settings:
        if self.alert_webhook_url and self.alert_webhook_secret is None:
            raise ValueError(
                "INFLOW_ALERT_WEBHOOK_URL needs INFLOW_ALERT_WEBHOOK_SECRET: alerts are signed"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL: ``INFLOW_DATABASE_URL`` or a SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'inflow.db'}"

    @property
    def key_file(self) -> Path:
        return self.data_dir / "secret.key"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings`` instead)."""
    return Settings()
