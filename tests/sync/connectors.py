"""Test-only connectors built from the example connector (the way a third party adds one).

``WINDOWED`` is the example provider read in five-day slices from 60 days back: each slice
checkpoints on its own, so a long sync has many checkpoints to crash, cancel and resume between.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from inflow.connectors import example
from inflow.connectors.spec import Connector, Stream

WINDOW = timedelta(days=5)
INITIAL = timedelta(days=60)


def _windowed(stream: Stream) -> Stream:
    inc = stream.incremental
    if inc is None:
        return stream
    return replace(stream, incremental=replace(inc, window=WINDOW, initial=INITIAL))


WINDOWED: Connector = replace(
    example.CONNECTOR,
    slug="example_windowed",
    title="Example, read in five-day windows (tests)",
    streams=tuple(_windowed(s) for s in example.CONNECTOR.streams),
)
