"""Oracles for providers whose numbers change as the day turns (late data restated, today's
values partial): the emulator read, as a client reads it, at the moment a sync began and at the
moment it ended. A sync's requests fall between the two, so what it stored is what one of the
two reads shows (both agree unless a day began meanwhile)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping


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
