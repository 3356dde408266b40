"""What the chart macro (templates/charts.html) needs besides the JSON it embeds: the table of
the same numbers (one row per period, one column per series) and whether any period is partial.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from inflow.errors import InflowError
from inflow.web.templating import render, templates


def chart_rows(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Periods of every series (by start), each with its values in series order."""
    series: Sequence[Mapping[str, Any]] = data.get("series", ())
    starts: dict[str, bool] = {}
    for s in series:
        for p in s["data"]["points"]:
            starts[p["periodStart"]] = starts.get(p["periodStart"], True) and p["complete"]
    rows = []
    for start in sorted(starts):
        values = []
        for s in series:
            found = next((p for p in s["data"]["points"] if p["periodStart"] == start), None)
            values.append(found["value"] if found else None)
        rows.append({"start": start, "complete": starts[start], "values": values})
    return rows


def chart_partial(data: Mapping[str, Any]) -> bool:
    return any(not p["complete"] for s in data.get("series", ()) for p in s["data"]["points"])


def end_date(moment: str) -> str:
    """The last day of a period that ends (excluded) at ``moment``: ``…-08T00:00`` → ``…-07``."""
    try:
        end = datetime.fromisoformat(moment)
    except ValueError:
        return moment
    return (end - timedelta(microseconds=1)).date().isoformat()


templates.env.filters["enddate"] = end_date
templates.env.filters["chart_rows"] = chart_rows
templates.env.filters["chart_partial"] = chart_partial


def error_page(request: Request, exc: InflowError, status: int, title: str) -> HTMLResponse:
    """The error page, rendered while the request's session is still open. (An error raised out
    of a page handler is rendered by ``web.errors`` after the session's rollback, when the page's
    user is detached and expired, so the layout cannot read ``user.email``.)"""
    return render(
        request,
        "error.html",
        {
            "title": title,
            "detail": exc.message[:1].upper() + exc.message[1:] + ".",
            "status": status,
        },
        status_code=status,
    )
