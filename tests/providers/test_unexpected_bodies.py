"""Every connector fed spec-valid but unexpected answers (the sandbox's ``mutate`` fault: one
value of a JSON answer replaced by null, ``[]``, ``{}`` or a wrong type, or removed), through
the real API, engine and in-process sandbox: each connection test and each sync ends as a
success, a failed step or a failed run, never an uncaught exception or an "internal error";
an answer the connector could not read is named by provider, request and what was wrong, and a
skipped item says the same.

SQLite only: the shapes are the connectors' and the runtime's business, the database stores
what they yield the same way on both backends (the sync suites run both).
"""

from __future__ import annotations

import copy
import json
import logging
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, delete

from inflow.connectors import get_connector
from inflow.connectors.answers import describe
from inflow.http.ratelimit import OutboundLimiter
from inflow.sandbox.faults import mutate
from inflow.sandbox.linkedin import STATIC_TOKEN
from inflow.storage.db import create_db_engine
from inflow.storage.models import QuotaUsage
from tests.conftest import TestClient
from tests.providers.emulator import location, relative
from tests.sync.helpers import SANDBOX_HOST, person, poll_run, start_sync

CALLING = ("twilio", "ringcentral", "aircall", "custom")
SLUGS = (
    "powerbi",
    "grafana",
    "looker_studio",
    "microsoft_clarity",
    "linkedin",
    "instagram",
    *CALLING,
)
SEEDS = range(1, 25)  # per connector: a connection test and a sync under each
RATE = 0.6  # of a connector's JSON answers, about this share is changed in one place
# The emulators' own rate enforcement, off (see ``Unlimited``).
VOLUME: dict[str, dict[str, int]] = {
    "ringcentral": {"rateWindowS": 0},
    "aircall": {"rateLimit": 1_000_000},
    "microsoft_clarity": {"dailyQuota": 1_000_000},  # and Inflow's count is reset per seed
    "linkedin": {"appDailyLimit": 1_000_000, "memberDailyLimit": 1_000_000},
}
REQUEST = re.compile(r" answered (GET|POST) /\S+ with an unexpected (body|item): \S")


@pytest.fixture
def engine(tmp_path: Path, sqlite_template: Path) -> Iterator[Engine]:
    """SQLite only (see the module docstring)."""
    path = tmp_path / "inflow.db"
    shutil.copy(sqlite_template, path)
    eng = create_db_engine(f"sqlite:///{path}")
    yield eng
    eng.dispose()


class Unlimited(OutboundLimiter):
    """Every request at once: the connectors' own rate limits are held to the sandbox's stats
    by their provider tests; here they would only make a few hundred runs wait minutes."""

    async def acquire(self, *_args: Any, **_kwargs: Any) -> float:
        return 0.0


@pytest.fixture
def emu(sandbox: FastAPI) -> Iterator[TestClient]:
    with TestClient(sandbox, base_url=SANDBOX_HOST) as http:
        yield http


def configure(emu: TestClient, slug: str, **body: Any) -> None:
    response = emu.post(f"/_sandbox/{slug}/config", json=body)
    assert response.status_code == 200, response.text


def source_config(emu: TestClient, slug: str) -> tuple[str, dict[str, Any]]:
    """The type and config of a source signing in to ``slug``'s emulator."""
    config: dict[str, Any] = emu.get("/_sandbox/credentials").json()[slug]["config"]
    if slug == "linkedin":  # a pasted token: no consent needed
        base = config["baseUrl"]
        config = {"organizationId": config["organizationId"], "accessToken": STATIC_TOKEN}
        config["baseUrl"] = base
    return ("calling" if slug in CALLING else slug), config


def connect_google(client: TestClient, emu: TestClient, headers: dict[str, str], source: str):
    """Looker Studio's consent, before any answer is changed."""
    start = client.get(
        "/api/oauth/looker_studio/authorize",
        params={"sourceId": source},
        headers=headers,
        follow_redirects=False,
    )
    callback = location(emu.get(relative(location(start)), follow_redirects=False))
    assert parse_qs(urlsplit(callback).query).get("code"), callback
    done = client.get(relative(callback), follow_redirects=False)
    assert location(done) == f"/sources/{source}?oauth=connected"


def named(message: str, title: str) -> bool:
    """An unexpected answer's message: the provider, the request, what was wrong."""
    return message.startswith(f"{title} answered ") and REQUEST.search(message) is not None


@pytest.mark.parametrize("slug", SLUGS)
def test_unexpected_answers_fail_a_step_or_a_run_naming_provider_and_request(
    app, client, factory, emu, fast_retries, caplog, slug
):
    title = get_connector(slug).title  # type: ignore[union-attr]
    app.state.engine_deps.limiter = Unlimited()
    _, headers = person(factory)
    type_, config = source_config(emu, slug)
    body = {"name": f"{slug} source", "type": type_, "config": config}
    response = client.post("/api/data-sources", headers=headers, json=body)
    assert response.status_code == 201, response.text
    source = response.json()["id"]
    if slug == "looker_studio":
        connect_google(client, emu, headers, source)
    caplog.set_level(logging.INFO)

    outcomes: Counter[str] = Counter()
    for seed in SEEDS:
        configure(emu, slug, seed=seed, faults={"mutateRate": RATE}, volume=VOLUME.get(slug, {}))
        with factory.begin() as session:  # each seed a new day of Clarity's 10 calls
            session.execute(delete(QuotaUsage))
        tested = client.post(f"/api/data-sources/{source}/test", headers=headers)
        assert tested.status_code == 200, tested.text
        result = tested.json()
        failed = [c for c in result["checks"] if not c["ok"]]
        assert result["success"] is not bool(failed), result
        for check in failed:
            assert "internal error" not in check["message"], (seed, check)
            if "unexpected" in check["message"]:
                assert named(check["message"], title), (seed, check)
                outcomes["test: unexpected answer"] += 1
            else:
                outcomes["test: failed step"] += 1
        outcomes["test: passed"] += not failed

        run, _ = poll_run(client, headers, start_sync(client, headers, source), timeout=120)
        assert run["status"] in ("succeeded", "failed"), run
        if run["status"] == "failed":
            error = run["error"]
            assert error["type"] != "InternalError", (seed, error)
            assert "internal error" not in error["message"], (seed, error)
            if error["type"] == "UnexpectedResponseError":
                assert error["fault"] == "provider", error
                assert named(error["message"], title), (seed, error)
                assert f" answered {error['request']} with " in error["message"], error
                assert error["message"].endswith(error["problem"]), error
            outcomes[f"sync: failed ({error['type']})"] += 1
        else:
            outcomes["sync: succeeded"] += 1
        full = client.get(f"/api/runs/{run['id']}", headers=headers).json()
        skipped = (full.get("timeline") or {}).get("skipped")
        if skipped:
            # a listing with a skipped item is not complete: nothing is taken for deleted
            assert run["counts"]["deleted"] == 0, (seed, run)
            for reason in skipped["reasons"]:
                if "unexpected" in reason:
                    assert named(reason, title), (seed, reason)
            outcomes["sync: items skipped"] += 1

    stats = emu.get(f"/_sandbox/{slug}/stats").json()
    assert stats["mutated"] > 0, stats  # the answers really were changed
    unread = sum(n for k, n in outcomes.items() if "nexpected" in k or "skipped" in k)
    assert unread > 0, outcomes  # and some of them were not what the connector reads
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()  # no traceback logged
        assert "internal error" not in record.getMessage(), record.getMessage()


def test_a_null_in_power_bis_workspace_list_is_a_failed_step_naming_it(app, client, factory, emu):
    """The reported case: Power BI lists a workspace as ``null``; the check tripped over it with
    a ``TypeError``. Seeds are tried until the sandbox nulls one workspace of the listing (and
    nothing the check reads before it)."""
    _, headers = person(factory)
    type_, config = source_config(emu, "powerbi")
    body = {"name": "Power BI", "type": type_, "config": config}
    source = client.post("/api/data-sources", headers=headers, json=body).json()["id"]
    nulled = re.compile(r"^GET /v1\.0/myorg/groups: value\[(\d+)\] → null$")
    for seed in range(1, 400):
        configure(emu, "powerbi", seed=seed, faults={"mutateRate": 1.0, "mutateKinds": ["null"]})
        before = emu.get("/_sandbox/powerbi/stats").json()["mutated"]
        result = client.post(f"/api/data-sources/{source}/test", headers=headers).json()
        stats = emu.get("/_sandbox/powerbi/stats").json()
        changes = stats["mutations"][-(stats["mutated"] - before) :]
        found = [m for change in changes if (m := nulled.match(change))]
        if found and changes[-1] == found[-1].group(0):  # the listing was the last answer read
            break
    else:
        pytest.fail("no seed nulled a workspace of the listing")
    index = found[-1].group(1)
    failed = [c for c in result["checks"] if not c["ok"]]
    assert failed[0]["message"] == (
        "Power BI answered GET /powerbi/v1.0/myorg/groups with an unexpected body: "
        f"value[{index}] is null, expected an object"
    ), result
    assert result["success"] is False


@pytest.mark.parametrize(
    ("body", "error", "said"),
    [
        pytest.param(
            {"value": [{"id": "a"}, {"id": "b"}, {"id": "c"}, None]},
            TypeError("'NoneType' object is not subscriptable"),
            "value[3] is null, expected an object",
            id="null-in-list",
        ),
        pytest.param(
            {"value": [{"id": "a"}, {"name": "b"}]},
            KeyError("id"),
            "value[1] has no 'id'",
            id="missing-field",
        ),
        pytest.param(
            {"calls": [{"at": "2026-01-01"}, {"at": 5}, {"at": "2026-01-02"}]},
            AttributeError("'int' object has no attribute 'replace'"),
            "calls[1].at is a number, expected a string",
            id="wrong-type",
        ),
        pytest.param(
            {"calls": [{"at": "2026-01-01"}, {"at": "soon"}]},
            ValueError("Invalid isoformat string: 'soon'"),
            "calls[1].at is 'soon', which the connector cannot read",
            id="unreadable-string",
        ),
        pytest.param(
            [1, 2],
            AttributeError("'list' object has no attribute 'get'"),
            "the body is a list, expected an object",
            id="body-of-another-type",
        ),
    ],
)
def test_describe_says_where_the_body_differs(body, error, said):
    assert describe(body, error).text == said


@pytest.mark.parametrize("kind", ["null", "empty_list", "empty_object", "wrong_type", "remove"])
def test_mutate_changes_one_value_the_seed_chooses(kind):
    body = {"value": [{"id": "a", "n": 1}, {"id": "b", "n": 2}], "next": None}
    results = {json.dumps(mutate(copy.deepcopy(body), seed, (kind,))) for seed in range(40)}
    assert len(results) > 3  # seeds choose different places
    for seed in range(40):
        once, again = (mutate(copy.deepcopy(body), seed, (kind,)) for _ in range(2))
        assert once == again  # and the same seed the same one
        changed, what = once
        assert changed != body or what.endswith(("→ 0", '→ "yes"')), what
