"""Deterministic, lazily generated sandbox data.

Everything is a pure function of a seed and a position: no global randomness, nothing
materialised up front, so volume 1,000,000 costs nothing until a page asks for it and the same
seed always gives the same records.

| name | gives |
|---|---|
| `stable_hash(*parts)` | a 64-bit hash of a seed and a key (blake2b; per entity, not per row) |
| `mix64(x)` | SplitMix64's finaliser: a cheap scramble of an integer |
| `LazyRecords(count, build)` | a `Sequence` whose item `i` is built on access |
| `encode_position` / `decode_position` | a stateless page token: a position bound to its query |
| `DailySeries(seed, keys)` | per day and key a (primary, secondary ≤ primary) pair, e.g. visits and signups |
| `call_day(seed, number, per_day)` | a day of a call log: how many calls, each one's time (sorted) |
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import TypeVar, overload

T = TypeVar("T")
MASK64 = (1 << 64) - 1
GOLDEN64 = 0x9E3779B97F4A7C15


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of `parts` (their reprs), the same on every run and machine."""
    data = "\x1f".join(repr(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def mix64(x: int) -> int:
    """SplitMix64's finaliser: a well-scrambled 64-bit integer from any integer."""
    z = (x + GOLDEN64) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def unit(h: int) -> float:
    """A 64-bit hash as a float in [0, 1)."""
    return (h >> 11) / float(1 << 53)


def pick(h: int, options: Sequence[T]) -> T:
    """One of `options`, chosen by hash `h`."""
    return options[h % len(options)]


def iso_z(epoch_s: float) -> str:
    """An epoch time as ISO 8601 UTC with a `Z` (`2024-05-01T10:00:00Z`)."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_position(position: int, *binding: object) -> str:
    """An opaque page token: `position`, valid only with the same `binding` (query values)."""
    raw = f"{position}:{stable_hash(*binding):016x}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_position(token: str, *binding: object) -> int | None:
    """The position in a token from `encode_position`, or None if it is foreign or damaged."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    position, _, digest = raw.partition(":")
    if not position.isdigit() or digest != f"{stable_hash(*binding):016x}":
        return None
    return int(position)


class LazyRecords(Sequence[T]):
    """`count` records, record `i` built by `build(i)` only when it is read."""

    def __init__(self, count: int, build: Callable[[int], T]) -> None:
        self._count, self._build = count, build

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self._build(i) for i in range(*index.indices(self._count))]
        if not -self._count <= index < self._count:
            raise IndexError(index)
        return self._build(index % self._count)


@dataclass(frozen=True)
class CallDay:
    """One day of a call log: `count` calls, the j-th `offset(j)` units after midnight (UTC).

    ``units`` is the clock a provider speaks: 86,400 seconds (Aircall) or 86,400,000 ms
    (RingCentral) a day. Offsets increase with j, so a day's calls are sorted by start time.
    """

    number: int  # days since 1970-01-01
    count: int
    salt: int
    units: int = 86_400

    @property
    def start(self) -> int:
        return self.number * self.units

    def offset(self, j: int) -> int:
        # (j + u) * units / count with u in [0, 1): increasing in j.
        return (j * self.units + mix64(self.salt + j) % self.units) // self.count

    def first_at(self, t: float) -> int:
        """The rank of the first call started at or after `t` (in units)."""
        return bisect_left(range(self.count), t - self.start, key=self.offset)

    def after(self, t: float) -> int:
        """The rank of the first call started after `t` (in units)."""
        return bisect_right(range(self.count), t - self.start, key=self.offset)


@lru_cache(maxsize=4096)
def call_day(
    seed: int, number: int, per_day: float, *, peak: int = 0, most: int, units: int = 86_400
) -> CallDay:
    """Weekdays busier than weekends, some noise; `peak` (>0) replaces the day's count, which
    never exceeds `most` (the ids' room per day)."""
    weekend = (number + 3) % 7 >= 5  # 1970-01-01 was a Thursday
    noise = 0.85 + 0.3 * (stable_hash(seed, "day", number) % 1000) / 1000
    count = peak if peak else int(per_day * (0.55 if weekend else 1.18) * noise)
    return CallDay(number, max(0, min(count, most)), stable_hash(seed, "calls", number), units)


@lru_cache(maxsize=64)
def _weights(seed: int, keys: int) -> tuple[float, ...]:
    """Each key's share of traffic: a few big keys, a long tail (cached per seed and count)."""
    return tuple(0.2 + 1.6 * unit(stable_hash(seed, "key", k)) ** 2 for k in range(keys))


@dataclass(frozen=True)
class DailySeries:
    """A daily series for `keys` keys (pages, campaigns, numbers): (primary, secondary) values.

    The primary value follows a weekly rhythm (weekends lower), a slow wave and per-day noise,
    scaled by a per-key weight; the secondary is `ratio_per_mille` of it (so never larger). Rows
    are addressed by a flat position `day * keys + key`, so a page token only needs a number.
    """

    seed: int
    keys: int
    base: int = 400
    ratio_per_mille: tuple[int, int] = (10, 60)

    def day_scale(self, ordinal: int) -> float:
        """The day's traffic level before key weights."""
        weekday = date.fromordinal(ordinal).weekday()
        rhythm = 0.6 if weekday >= 5 else 1.0
        wave = 1.0 + 0.15 * math.sin(ordinal / 29.0)
        noise = 0.9 + 0.2 * unit(stable_hash(self.seed, "day", ordinal))
        return self.base * rhythm * wave * noise

    def values(self, ordinal: int, first_key: int, stop_key: int) -> tuple[list[int], list[int]]:
        """(primaries, secondaries) for keys `first_key`..`stop_key - 1` on one day.

        The day's random words come from one SHAKE-128 stream (C speed), so the per-row work is
        a little arithmetic: this is the 1,000,000-row hot path.
        """
        stream = hashlib.shake_128(f"{self.seed}:{ordinal}".encode()).digest(4 * stop_key)
        words = array("I", stream)
        if sys.byteorder == "big":  # the stream is read as little-endian words everywhere
            words.byteswap()
        scale = self.day_scale(ordinal) / 131072.0
        weights = _weights(self.seed, self.keys)[first_key:stop_key]
        days_words = words[first_key:]
        primary = [
            int(scale * w * (98304 + (z & 0xFFFF)))
            for w, z in zip(weights, days_words, strict=True)
        ]
        lo, hi = self.ratio_per_mille
        span = hi - lo + 1
        secondary = [
            p * (lo + (z >> 16) % span) // 1000 for p, z in zip(primary, days_words, strict=True)
        ]
        return primary, secondary

    def spans(
        self, first_day: int, days: int, start: int, limit: int
    ) -> Iterator[tuple[int, int, int]]:
        """(day ordinal, first key, stop key) covering flat positions `start`..`start+limit`."""
        end = min(start + limit, days * self.keys)
        pos = start
        while pos < end:
            day, key = divmod(pos, self.keys)
            stop = min(self.keys, key + end - pos)
            yield first_day + day, key, stop
            pos += stop - key
