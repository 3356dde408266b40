"""Oracles for providers whose numbers change as the day turns (late data restated, today's
values partial): the emulator read, as a client reads it, at the moment a sync began and at the
moment it ended. A sync's requests fall between the two, so what it stored is what one of the
two reads shows (both agree unless a day began meanwhile)."""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager


class HeldClock:
    """A sandbox clock: the test's clock, moved on by ``days`` when a test says so, or held at
    one moment while the test reads what the API showed then (``at``)."""

    def __init__(self) -> None:
        self.days = 0.0
        self.held: float | None = None

    def __call__(self) -> float:
        return (time.time() if self.held is None else self.held) + self.days * 86400

    @contextmanager
    def at(self, moment: float) -> Iterator[None]:
        self.held = moment
        try:
            yield
        finally:
            self.held = None


def assert_between(
    got: Mapping[Hashable, float],
    before: Mapping[Hashable, float],
    after: Mapping[Hashable, float],
) -> None:
    """``got`` equals ``before`` and ``after`` when they agree; otherwise each of its keys is
    in one of them with that one's value, and every key both have is there."""
    if before == after:
        assert dict(got) == dict(before)
        return
    assert set(before) & set(after) <= set(got), set(before) & set(after) - set(got)
    for key, value in got.items():
        assert key in before or key in after, key
        assert value in (before.get(key), after.get(key)), (
            key,
            value,
            before.get(key),
            after.get(key),
        )
