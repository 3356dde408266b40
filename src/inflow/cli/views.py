"""What the CLI prints with rich: fetched data points, a sync's live progress, the demo's syncs."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from inflow.connectors.records import DataPoint
from inflow.storage.models import DataSource, SyncRun
from inflow.sync.engine import RunRecorder, RunResult


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"


def _period(point: DataPoint) -> str:
    start, end = point.period_start, point.period_end
    if point.granularity in ("day", "week", "month"):
        text = (
            f"{start:%Y-%m-%d}"
            if point.granularity == "day"
            else f"{start:%Y-%m-%d} {point.granularity}"
        )
    else:
        text = f"{start:%Y-%m-%d %H:%M}-{end:%H:%M}"
    return text if point.complete else f"{text} (partial)"


def points_table(points: Sequence[DataPoint], totals: Mapping[str, float | None]) -> Table:
    """The fetch review: metric, period, dimensions, value; grouped by metric, with its total
    (by the metric's own rule: a sum of counts, a weighted mean of rates)."""
    units = any(p.unit for p in points)
    table = Table("metric", "period", "dimensions", "value", *(["unit"] if units else []))
    table.columns[3].justify = "right"
    grouped: dict[str, list[DataPoint]] = defaultdict(list)
    for p in points:
        grouped[p.metric].append(p)
    for metric in sorted(grouped):
        rows = sorted(grouped[metric], key=lambda p: (p.period_start, sorted(p.dimensions.items())))
        for index, p in enumerate(rows):
            dims = ", ".join(f"{k}={v}" for k, v in sorted(p.dimensions.items()))
            table.add_row(
                escape(metric) if index == 0 else "",
                _period(p),
                escape(dims),
                _number(p.value),
                *([escape(p.unit or "")] if units else []),
            )
        table.add_row(
            "",
            f"[bold]total[/bold] ({len(rows)} points)",
            "",
            f"[bold]{_number(totals.get(metric))}[/bold]",
            *([""] if units else []),
            end_section=True,
        )
    return table


def waiting_text(waiting: Mapping[str, Any] | None) -> str:
    """``waiting: <reason> until HH:MM:SS UTC`` for a run held by a rate limit, quota or retry."""
    if not waiting:
        return ""
    until = waiting.get("until")
    when = ""
    if isinstance(until, str):
        try:
            when = f" until {datetime.fromisoformat(until):%H:%M:%S} UTC"
        except ValueError:
            when = f" until {until}"
    return f"waiting: {waiting.get('reason', 'a pause')}{when}"


def _detail(recorder: RunRecorder) -> str:
    text = f"{recorder.records:,} records read · {recorder.requests:,} requests"
    if recorder.retries:
        text += f" ({recorder.retries} retried)"
    waiting = waiting_text(recorder.waiting)
    return f"{text} · [yellow]{escape(waiting)}[/yellow]" if waiting else text


async def follow_run(
    console: Console, title: str, run: Coroutine[Any, Any, RunResult], recorder: RunRecorder
) -> RunResult:
    """Run a sync with a progress bar showing what its recorder sees, until it ends."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(escape(title), total=None, detail="starting")
        job = asyncio.ensure_future(run)
        while not job.done():
            await asyncio.wait({job}, timeout=0.25)
            progress.update(task, detail=_detail(recorder))
        progress.update(task, total=1, completed=1, detail=_detail(recorder))
    return job.result()


def runs_table(rows: Sequence[tuple[DataSource, str, SyncRun | None]]) -> Table:
    """The demo's live view: each source with its latest run."""
    table = Table("source", "type", "sync", "created", "updated", "note", title="demo syncs")
    for source, type_, run in rows:
        if run is None:
            table.add_row(escape(source.name), type_, "-", "", "", "")
            continue
        note = waiting_text(run.waiting) or (str((run.error or {}).get("message", ""))[:80])
        colour = {"succeeded": "green", "failed": "red", "running": "cyan"}.get(run.status, "")
        status = f"[{colour}]{run.status}[/{colour}]" if colour else run.status
        table.add_row(
            escape(source.name),
            type_,
            status,
            f"{run.created:,}",
            f"{run.updated:,}",
            escape(note),
        )
    return table
