"""`/_sandbox/*`: credentials, configuration, stats, expected values, reset, revoke-all.

These routes belong to the sandbox itself: faults and stats never apply to them.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from inflow.sandbox.emulator import JSONObject, Reject, base_url, json_response
from inflow.sandbox.state import ConfigError, ConfigIn, EmulatorState, get_sandbox

router = APIRouter(prefix="/_sandbox", tags=["sandbox"])


def _state(request: Request, slug: str) -> EmulatorState:
    states = get_sandbox(request).states
    if slug not in states:
        known = ", ".join(sorted(states))
        raise Reject(json_response({"sandboxError": f"no emulator {slug!r}; known: {known}"}, 404))
    return states[slug]


@router.get("/credentials", operation_id="sandbox-credentials")
async def get_credentials(request: Request) -> Response:
    """A working data-source config (and OAuth client, if any) for every emulator."""
    out: dict[str, JSONObject] = {}
    for slug, state in get_sandbox(request).states.items():
        url = base_url(request, slug)
        entry: dict[str, JSONObject] = {"config": state.emulator.credentials(url)}
        if state.emulator.oauth is not None:
            entry["oauth"] = state.emulator.oauth.describe(url)
        out[slug] = entry
    return json_response(out)


@router.post("/reset", operation_id="sandbox-reset")
async def reset(request: Request) -> Response:
    """Every emulator back to its defaults: no faults, zeroed stats, tokens forgotten."""
    get_sandbox(request).reset()
    return json_response({"reset": True})


@router.get("/{slug}/config", operation_id="sandbox-get-config")
async def get_config(request: Request, slug: str) -> Response:
    """The emulator's seed, volume and faults."""
    return json_response(_state(request, slug).public())


@router.post("/{slug}/config", operation_id="sandbox-set-config")
async def set_config(request: Request, slug: str, body: ConfigIn) -> Response:
    """Merge a partial seed/volume/faults update."""
    state = _state(request, slug)
    try:
        state.configure(body)
    except ConfigError as exc:
        return json_response({"sandboxError": str(exc)}, 400)
    return json_response(state.public())


@router.get("/{slug}/stats", operation_id="sandbox-stats")
async def get_stats(request: Request, slug: str) -> Response:
    """Request counts by endpoint, status and second; throttling and Retry-After violations;
    with ``?arrivals=true`` each request's arrival time."""
    arrivals = request.query_params.get("arrivals", "").lower() in ("1", "true")
    return json_response(_state(request, slug).stats.public(arrivals=arrivals))


@router.get("/{slug}/expected", operation_id="sandbox-expected")
async def get_expected(request: Request, slug: str) -> Response:
    """The exact values the emulator's data implies (parameters are emulator-specific)."""
    state = _state(request, slug)
    if state.emulator.expected is None:
        return json_response({"sandboxError": f"{slug} has no expected values"}, 404)
    return json_response(state.emulator.expected(state, dict(request.query_params)))


@router.post("/{slug}/oauth/revoke-all", operation_id="sandbox-revoke-all")
async def revoke_all(request: Request, slug: str) -> Response:
    """Revoke every token the emulator issued, as a user withdrawing consent does."""
    _state(request, slug).tokens.revoke_all()
    return json_response({"revoked": True})
