"""Structured logging: every line carries the request id (and run/source ids when bound).

Pretty in a terminal, JSON lines otherwise. Standard-library loggers (uvicorn, alembic) are
routed through the same processors, and a redaction processor masks secret-looking keys.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import structlog

# A key is secret when, lower-cased and without "-"/"_", it contains one of these words: this
# catches snake_case, camelCase and header spellings alike (clientSecret, x-api-key, set-cookie).
SENSITIVE_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "apikey",
    "cookie",
    "jwt",
    "credential",
)
MASK = "***"


def is_sensitive_key(key: str) -> bool:
    """Whether a log key (or a nested dict key) names something secret."""
    folded = key.lower().replace("-", "").replace("_", "")
    return any(word in folded for word in SENSITIVE_WORDS)


def _redact_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: MASK if isinstance(k, str) and is_sensitive_key(k) else _redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list):  # not tuples: exc_info and positional_args must stay as they are
        return [_redact_value(v) for v in value]
    return value


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        event[key] = MASK if is_sensitive_key(key) else _redact_value(event[key])
    return event


def _ensure_request_id(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event.setdefault("request_id", None)
    return event


class _Stderr:
    """Whatever ``sys.stderr`` is at the time of writing (rich's live views swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "INFO", fmt: str = "auto", *, file: Path | None = None) -> None:
    """Configure structlog and the standard library once for the process. With ``file``, log
    lines go there as JSON and only warnings and errors to the terminal (``inflow demo``)."""
    fmt = fmt.lower()
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        _ensure_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    # JSON lines carry the traceback as a string; the console renderer formats it itself
    # (structlog asks not to combine it with format_exc_info), never with the frames' locals:
    # they hold passwords and tokens that the redaction processor cannot see.
    tty = sys.stderr.isatty()
    rendering: list[structlog.types.Processor] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if use_json
        else [
            structlog.dev.ConsoleRenderer(
                colors=tty,
                exception_formatter=(
                    structlog.dev.RichTracebackFormatter(show_locals=False)
                    if tty
                    else structlog.dev.plain_traceback
                ),
            )
        ]
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler: logging.Handler = logging.StreamHandler(_Stderr() if file else sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *rendering,
            ],
        )
    )
    handlers = [handler]
    if file is not None:
        handler.setLevel(logging.WARNING)
        file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(file, encoding="utf-8")
        to_file.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=shared,
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer(),
                ],
            )
        )
        handlers.append(to_file)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # a warning is a log line too, not raw text amid JSON
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # httpx logs every request's full URL, query string included (where some providers want
    # their keys): our own timeline records requests, redacted, instead.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger; bind ids with ``structlog.contextvars.bind_contextvars``."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
