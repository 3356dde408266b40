"""Fault injection: what goes wrong with the next request, decided before the handler runs.

A fault comes from the `X-Sandbox-Fault` header (that one request) or from the emulator's config
(`errorRate`, `status429Rate`, `status429Burst`, `truncateRate`, `dropRate`, `latencyMs`,
`tokenTtlS`, `mutateRate` with `mutateKinds`), drawn from the emulator's seeded RNG so a run is
repeatable. The header takes an optional number: `slow=300` sleeps 300 ms (default 2,000),
`rate_limit=5` says `Retry-After: 5`, `mutate=7` mutates with seed 7.

| kind | effect |
|---|---|
| `rate_limit` | 429 with the provider's body, `Retry-After` and `X-RateLimit-*` |
| `server_error` / `unavailable` | 500 / 503 with the provider's body |
| `truncate` | a 200 whose JSON body is cut in half (Content-Length matches the cut body) |
| `drop` | the response starts, half the body is sent, then the connection dies |
| `expired_token` | the request's OAuth token is treated as expired |
| `slow` | the response is delayed |
| `mutate` | a 200 whose JSON body has one value replaced (null, `[]`, `{}`, a wrong type) or removed |

`mutate` answers stay valid JSON of the provider's envelope, only not what a client expects:
the value is chosen by a seed (the header's number, or one drawn per request from the emulator's
seed, method and URL, so concurrent requests get the same changes in any order), first a field
of the body's structure (`value[].id`: every item's `id` is one choice), then one occurrence.

`volume.ratePerSecond` (when an emulator has it) is a real limit, not a fault: requests past
it in one wall-clock second get a 429 until the next second.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import orjson
from fastapi import Request

from inflow.sandbox.emulator import ALL_FAULTS, FaultKind
from inflow.sandbox.state import MUTATE_KINDS, EmulatorState, MutateKind

FAULT_HEADER = "x-sandbox-fault"
SLOW_DEFAULT_MS = 2000
NO_FAULTS_KEY = "x-sandbox-faults"
NO_FAULTS: dict[str, object] = {NO_FAULTS_KEY: False}
"""`openapi_extra` of a route that faults never touch (an OAuth authorize page)."""

Mangle = Literal["truncate", "drop", "mutate"]


class UnknownFaultError(ValueError):
    """The fault header names a fault the emulator does not know."""


@dataclass(frozen=True)
class Decision:
    """What happens to one request: an immediate error status, a delay, a mangled body."""

    status: int | None = None
    retry_after_s: int | None = None
    delay_s: float = 0.0
    mangle: Mangle | None = None
    header_fault: FaultKind | None = None
    mutate_seed: int | None = None


def parse_fault_header(value: str, state: EmulatorState) -> tuple[FaultKind, float | None]:
    """`kind` or `kind=number` from the header; unknown or unsupported kinds are refused."""
    name, _, number = value.strip().partition("=")
    if name not in ALL_FAULTS or name not in state.emulator.faults:
        supported = ", ".join(sorted(state.emulator.faults))
        raise UnknownFaultError(
            f"fault {name!r} is not supported by {state.emulator.slug}; supported: {supported}"
        )
    try:
        arg = float(number) if number else None
    except ValueError as exc:
        raise UnknownFaultError(f"fault argument {number!r} is not a number") from exc
    return cast(FaultKind, name), arg


def decide(state: EmulatorState, header: str | None, now: float) -> Decision:
    """The fault for the next request of `state`'s emulator (advances its RNG and burst)."""
    if header is not None:
        decision = _from_header(state, header)
        if decision.status is None and _over_limit(state, state.volume_of("ratePerSecond"), now):
            return Decision(status=429, retry_after_s=1, header_fault=decision.header_fault)
        return decision
    faults = state.faults
    delay = faults.latency_ms / 1000
    retry = faults.retry_after_s
    if state.burst_left > 0:
        state.burst_left -= 1
        return Decision(status=429, retry_after_s=retry, delay_s=delay)
    if faults.status429_rate and state.rng.random() < faults.status429_rate:
        return Decision(status=429, retry_after_s=retry, delay_s=delay)
    if _over_limit(state, state.volume_of("ratePerSecond"), now):
        return Decision(status=429, retry_after_s=max(1, math.ceil(state.window_second + 1 - now)))
    if faults.error_rate and state.rng.random() < faults.error_rate:
        return Decision(status=state.rng.choice((500, 503)), delay_s=delay)
    if faults.truncate_rate and state.rng.random() < faults.truncate_rate:
        return Decision(delay_s=delay, mangle="truncate")
    if faults.drop_rate and state.rng.random() < faults.drop_rate:
        return Decision(delay_s=delay, mangle="drop")
    return Decision(delay_s=delay)


def _from_header(state: EmulatorState, header: str) -> Decision:
    kind, arg = parse_fault_header(header, state)
    if kind == "rate_limit":
        retry = int(arg) if arg is not None else state.faults.retry_after_s
        return Decision(status=429, retry_after_s=retry, header_fault=kind)
    if kind in ("server_error", "unavailable"):
        return Decision(status=500 if kind == "server_error" else 503, header_fault=kind)
    if kind in ("truncate", "drop"):
        return Decision(mangle=cast(Mangle, kind), header_fault=kind)
    if kind == "mutate":
        seed = int(arg) if arg is not None else state.seed
        return Decision(mangle="mutate", header_fault=kind, mutate_seed=seed)
    if kind == "slow":
        return Decision(delay_s=(arg if arg is not None else SLOW_DEFAULT_MS) / 1000)
    return Decision(header_fault=kind)


def mutation_seed(state: EmulatorState, method: str, target: str) -> int | None:
    """The seed of this answer's mutation under the emulator's `mutateRate`, or None: drawn
    from the emulator's seed, the method and the URL (not from the shared RNG, so the
    changes do not depend on the order concurrent requests arrive in)."""
    rate = state.faults.mutate_rate
    if not rate:
        return None
    rng = random.Random(f"{state.seed}|{method}|{target}")
    return rng.getrandbits(32) if rng.random() < rate else None


_Place = tuple[Any, str | int | None, str]  # (container, key or index, where); the body: None


def _places(body: Any) -> dict[str, list[_Place]]:
    """Every value of a body, grouped by its field (`value[].id`), in document order."""
    out: dict[str, list[_Place]] = {"": [(None, None, "the body")]}
    stack: list[tuple[Any, str, str]] = [(body, "", "")]
    while stack:
        node, shape, where = stack.pop()
        if isinstance(node, dict):
            children: list[tuple[str | int, str, str]] = [
                (k, f"{shape}.{k}" if shape else str(k), f"{where}.{k}" if where else str(k))
                for k in node
            ]
        elif isinstance(node, list):
            children = [(i, f"{shape}[]", f"{where}[{i}]") for i in range(len(node))]
        else:
            continue
        for key, child_shape, child_where in children:
            out.setdefault(child_shape, []).append((node, key, child_where))
            stack.append((node[key], child_shape, child_where))
    return out


def _wrong_type(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int | float):
        return "many"
    if isinstance(value, str):
        return 12345
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return 1
    return 0


_REPLACEMENTS: dict[MutateKind, Any] = {"null": None, "empty_list": [], "empty_object": {}}


def mutate(body: Any, seed: int, kinds: Sequence[MutateKind] = MUTATE_KINDS) -> tuple[Any, str]:
    """`body` with one value replaced or removed (in place), chosen by `seed`; and what
    changed (`value[3].id → null`)."""
    rng = random.Random(seed)
    places = _places(body)
    shape = rng.choice(sorted(places))
    container, key, where = rng.choice(places[shape])
    kind = rng.choice(list(kinds) or list(MUTATE_KINDS))
    current = body if container is None else container[key]
    if kind == "remove" and container is None:
        kind = "null"
    if kind == "remove":
        del container[key]
        return body, f"{where} removed"
    new = _wrong_type(current) if kind == "wrong_type" else _REPLACEMENTS[kind]
    if new == current and type(new) is type(current):
        new = _wrong_type(current)
    shown = orjson.dumps(new).decode()
    if container is None:
        return new, f"the body → {shown}"
    container[key] = new
    return body, f"{where} → {shown}"


def _over_limit(state: EmulatorState, limit: int, now: float) -> bool:
    """A fixed one-second window (limit 0: count only); only accepted requests use it up."""
    second = int(now)
    if second != state.window_second:
        state.window_second, state.window_count = second, 0
    if limit and state.window_count >= limit:
        return True
    state.window_count += 1
    return False


def count_in_window(state: EmulatorState, now: float) -> int:
    """Requests accepted so far in the current second (for `X-RateLimit-Remaining`)."""
    return state.window_count if int(now) == state.window_second else 0


def requested_fault(request: Request) -> FaultKind | None:
    """The fault this request asked for with `X-Sandbox-Fault` (set by the middleware)."""
    fault: FaultKind | None = request.scope.get("state", {}).get("sandbox_fault")
    return fault
