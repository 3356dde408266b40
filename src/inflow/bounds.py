"""The bounds of every date, time and integer the API takes (one place, written down once).

Dates and times are between ``MIN_DATE`` and ``MAX_DATE`` (whole days, UTC): wide enough for
any metric a provider reports or a test plans, narrow enough that a day, a week, a month or a
range of the same length before it (trends, a test's baseline) still fits Python's calendar,
SQLite's text dates and PostgreSQL's ``timestamptz``. Integers fit a 64-bit signed column;
an offset is at most ``MAX_OFFSET``. Dates are ISO 8601 text only: never a number (pydantic
reads ``-1.17e-38`` or ``"1700000000"`` as seconds since 1970 unless told not to).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

MIN_DATE = date(1970, 1, 1)
MAX_DATE = date(2999, 12, 31)
MIN_MOMENT = datetime.combine(MIN_DATE, time.min, UTC)
END_MOMENT = datetime.combine(MAX_DATE + timedelta(days=1), time.min, UTC)  # excluded
MAX_INT = 2**63 - 1
MAX_OFFSET = 1_000_000_000

DATE_RANGE = f"between {MIN_DATE.isoformat()} and {MAX_DATE.isoformat()}"
