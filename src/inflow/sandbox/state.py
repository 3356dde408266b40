"""The live, per-app state of every emulator: seed, volume, faults, stats, issued tokens.

State hangs off the sandbox app (`app.state.sandbox`), never off a module, so two apps built by
`create_app()` (two tests, say) never see each other's configuration or tokens.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from inflow.sandbox.emulator import Emulator, FaultKind, JSONObject
from inflow.sandbox.stats import Stats
from inflow.sandbox.tokens import TokenStore

Clock = Callable[[], float]


MutateKind = Literal["null", "empty_list", "empty_object", "wrong_type", "remove"]
MUTATE_KINDS: tuple[MutateKind, ...] = (
    "null",
    "empty_list",
    "empty_object",
    "wrong_type",
    "remove",
)


class Faults(BaseModel):
    """Fault injection for one emulator (camelCase in JSON). Rates are probabilities 0..1."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    error_rate: float = Field(0.0, ge=0, le=1)
    latency_ms: int = Field(0, ge=0, le=120_000)
    status429_rate: float = Field(0.0, ge=0, le=1)
    retry_after_s: int = Field(1, ge=0, le=3600)
    truncate_rate: float = Field(0.0, ge=0, le=1)
    drop_rate: float = Field(0.0, ge=0, le=1)
    token_ttl_s: float | None = Field(None, gt=0)
    status429_burst: int = Field(0, ge=0)
    # A JSON answer changed in one place (`faults.mutate`): how often, and the changes allowed.
    mutate_rate: float = Field(0.0, ge=0, le=1)
    mutate_kinds: tuple[MutateKind, ...] = MUTATE_KINDS


# Which fault kind a config field injects: a field is refused when the emulator lacks the kind.
FIELD_KINDS: dict[str, FaultKind] = {
    "error_rate": "server_error",
    "latency_ms": "slow",
    "status429_rate": "rate_limit",
    "truncate_rate": "truncate",
    "drop_rate": "drop",
    "token_ttl_s": "expired_token",
    "status429_burst": "rate_limit",
    "mutate_rate": "mutate",
}


class ConfigIn(BaseModel):
    """`POST /_sandbox/{slug}/config`: every part optional; what is given is merged in."""

    model_config = ConfigDict(extra="forbid")

    seed: int | None = None
    volume: dict[str, int] | None = None
    faults: Faults | None = None


class ConfigError(ValueError):
    """A config update names something the emulator does not have."""


class EmulatorState:
    """One emulator's live configuration and bookkeeping."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.tokens = TokenStore()
        self.reset()

    def reset(self) -> None:
        """Back to the emulator's defaults: no faults, zeroed stats, no issued tokens."""
        self.seed = self.emulator.default_seed
        self.volume: dict[str, int] = dict(self.emulator.default_volume)
        self.faults = Faults()
        self.burst_left = 0
        self.rng = random.Random(self.seed)
        self.stats = Stats()
        self.window_second = 0
        self.window_count = 0
        # The request count (`stats.total`) when each volume key was last set: an emulator
        # may number its requests from a setting (Instagram's throttle switch does).
        self.volume_set_at: dict[str, int] = {}
        self.tokens.clear()

    def configure(self, update: ConfigIn) -> None:
        """Merge a partial update; refuse unknown volume keys and unsupported faults."""
        unknown = set(update.volume or {}) - set(self.emulator.default_volume)
        if unknown:
            known = ", ".join(sorted(self.emulator.default_volume)) or "none"
            raise ConfigError(f"unknown volume key(s) {sorted(unknown)}; known: {known}")
        if update.faults is not None:
            for name in update.faults.model_fields_set:
                kind = FIELD_KINDS.get(name)
                if kind is not None and kind not in self.emulator.faults:
                    raise ConfigError(f"{self.emulator.slug} does not support {kind} faults")
            changes = {k: getattr(update.faults, k) for k in update.faults.model_fields_set}
            self.faults = self.faults.model_copy(update=changes)
            if "status429_burst" in changes:
                self.burst_left = self.faults.status429_burst
        if update.seed is not None:
            self.seed = update.seed
        self.volume.update(update.volume or {})
        for key in update.volume or {}:
            self.volume_set_at[key] = self.stats.total
        # Re-seeding on every update makes a test's fault sequence repeatable.
        self.rng = random.Random(self.seed)

    def public(self) -> JSONObject:
        """The configuration as JSON; `status429Burst` is what is left of the burst."""
        faults = self.faults.model_dump(by_alias=True)
        faults["status429Burst"] = self.burst_left
        return {"seed": self.seed, "volume": dict(self.volume), "faults": faults}

    def volume_of(self, key: str) -> int:
        """One volume setting (0 when the emulator has no such key)."""
        return self.volume.get(key, 0)


class Sandbox:
    """Every emulator's state for one app, and the clock they all read."""

    def __init__(self, emulators: Mapping[str, Emulator], clock: Clock) -> None:
        self.clock = clock
        self.states = {slug: EmulatorState(e) for slug, e in emulators.items()}

    def reset(self) -> None:
        """Every emulator back to its defaults."""
        for state in self.states.values():
            state.reset()


def get_sandbox(request: Request) -> Sandbox:
    """The sandbox of the app serving `request`."""
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


def get_state(request: Request, slug: str) -> EmulatorState:
    """The live state of emulator `slug` in the app serving `request`."""
    return get_sandbox(request).states[slug]


def clock_now(request: Request) -> float:
    """The sandbox clock's time (wall-clock epoch seconds unless a test froze it)."""
    return get_sandbox(request).clock()
