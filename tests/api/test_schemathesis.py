"""The OpenAPI document against the running API: schemathesis generates requests for every
operation (in-process, from ``/openapi.json``) with a real admin's token and real objects
(a space, a source, points, a test, a run, a custom metric), so most cases get past 401/404.

Every answer must be no 5xx, a status the document lists for that operation (the problem
answers are documented centrally: ``api/errors.py: document_problems``), the documented
content type, headers and body schema; a request made invalid on purpose is refused, one
without a token too, and a 405's ``Allow`` lists the path's methods. The number of cases is
bounded (``EXAMPLES`` per operation, derandomized: the same cases on every run, so a failure
repeats). On both backends: PostgreSQL refuses what SQLite stores (a NUL character in text).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import allow_header_conformance

from tests.api.objects import create_source, person
from tests.conftest import TestClient

EXAMPLES = 15  # per operation and backend: both backends in 1-2 minutes on a 2-core machine
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    allow_header_conformance,
    negative_data_rejection,
    ignored_auth,
    missing_required_header,
    unsupported_method,
]


def _chosen(value: Any) -> bool:
    """Three in four: decided by the generated value, so a case repeats as it was."""
    return zlib.crc32(repr(value).encode()) % 4 != 0


# An invalid request may also be refused as too large (413): ours is a 1 MiB body limit.
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 403, 404, 405, 409, 413, 415, 422, 429]
            }
        }
    }
)


class Objects:
    """Real objects of the admin whose token the cases carry, by parameter or field name
    (snake_case in paths, camelCase in queries and bodies)."""

    def __init__(self, headers: dict[str, str], ids: dict[str, Any]) -> None:
        self.headers = headers
        self.ids = ids
        self.answered: dict[str, set[int]] = defaultdict(set)  # operation → statuses

    def not_reached(self, operations: Iterable[str]) -> list[str]:
        """The operations that never answered with a success."""
        return [op for op in operations if not any(200 <= s < 300 for s in self.answered[op])]

    def use(self, case: Any) -> dict[str, str]:
        """Most generated ids and names become a real object's, in the parts of a case that
        are meant to be valid (a part made invalid on purpose stays so); a DELETE keeps its
        generated path, so the objects stay for the other operations. The headers to send:
        the admin's token, unless the case's own headers are the invalid part."""
        invalid = {
            str(location.value)
            for location, info in (case.meta.components.items() if case.meta else ())
            if info.mode == GenerationMode.NEGATIVE
        }
        if case.method.upper() != "DELETE" and "path" not in invalid:
            case.path_parameters = self._swap(case.path_parameters)
        if "query" not in invalid:
            case.query = self._swap(case.query)
        if "body" not in invalid:
            case.body = self._swap(case.body)
        return {} if "header" in invalid else self.headers

    def _swap(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._swap(v) for v in value]
        if not isinstance(value, dict):
            return value
        out = {}
        for name, item in value.items():
            key = name.replace("_", "").lower()
            if key in self.ids and _chosen(item):
                real = self.ids[key]
                out[name] = [real] if isinstance(item, list) else real
            else:
                out[name] = self._swap(item)
        return out


def _objects(client: TestClient, factory: Any) -> Objects:
    _, headers = person(factory, role="admin")
    space = client.post("/api/spaces", headers=headers, json={"name": "Marketing"}).json()
    source = create_source(client, headers, spaceId=space["id"])
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    points = [
        {
            "sourceId": source["id"],
            "metric": metric,
            "value": value,
            "periodStart": (day - timedelta(days=n)).isoformat(),
            "periodEnd": (day - timedelta(days=n - 1)).isoformat(),
        }
        for n in range(1, 4)
        for metric, value in (("visits", 100 + n), ("signups", n))
    ]
    stored = client.post("/api/data-points", headers=headers, json={"dataPoints": points})
    assert stored.status_code == 200, stored.text
    raw = client.get("/api/data-points/raw", headers=headers).json()["items"]
    test = client.post(
        "/api/tests",
        headers=headers,
        json={
            "name": "t",
            "metric": "visits",
            "startDate": (day - timedelta(days=2)).date().isoformat(),
        },
    ).json()
    linked = client.post(
        f"/api/tests/{test['id']}/data-points", headers=headers, json={"ids": [raw[0]["id"]]}
    )
    assert linked.status_code == 200, linked.text
    metric = client.post(
        "/api/metrics",
        headers=headers,
        json={"key": "visit_rate", "label": "Rate", "formula": "signups / visits"},
    )
    assert metric.status_code == 201, metric.text
    run = client.post(f"/api/data-sources/{source['id']}/sync", headers=headers)
    assert run.status_code == 202, run.text
    backfill = client.post(
        f"/api/data-sources/{source['id']}/backfill",
        headers=headers,
        json={"from": (day - timedelta(days=9)).date().isoformat(), "to": day.date().isoformat()},
    )
    assert backfill.status_code == 202, backfill.text
    spare = client.post("/api/tokens", headers=headers, json={"name": "spare"}).json()
    member, _ = person(factory)
    plugin = client.get("/api/marketplace/plugins", headers=headers).json()[0]["serviceId"]
    ids = {
        "spaceid": space["id"],
        "sourceid": source["id"],
        "testid": test["id"],
        "linktotests": test["id"],
        "pointid": raw[0]["id"],
        "ids": raw[0]["id"],
        "runid": run.json()["runId"],
        "backfillid": backfill.json()["id"],
        "tokenid": spare["id"],
        "userid": str(member.id),
        "key": "visit_rate",
        "metric": "visits",
        "type": "example",
        "serviceid": plugin,
    }
    return Objects(headers, ids)


# Operations the cases must get past 401/404/422 on (a success at least once): every read,
# and the writes whose bodies the generated cases fill with real ids.
REACHED = {
    f"{method} {path}"
    for method, paths in {
        "GET": [
            "/api/audit", "/api/data-points", "/api/data-points/raw", "/api/data-points/trends",
            "/api/data-points/{point_id}/history", "/api/data-sources",
            "/api/data-sources/{source_id}", "/api/data-sources/{source_id}/runs",
            "/api/integrations/types", "/api/integrations/{type}/metrics", "/api/me",
            "/api/marketplace/plugins", "/api/metrics", "/api/runs/{run_id}", "/api/spaces",
            "/api/spaces/{space_id}", "/api/spaces/{space_id}/members", "/api/tests",
            "/api/tests/{test_id}", "/api/tests/{test_id}/results", "/api/tokens",
            "/api/backfills/{backfill_id}", "/api/data-sources/{source_id}/backfills",
        ],
        "POST": [
            "/api/data-sources/{source_id}/fetch", "/api/data-sources/{source_id}/test",
            "/api/runs/{run_id}/cancel", "/api/spaces", "/api/tests",
            "/api/backfills/{backfill_id}/cancel",
            "/api/tests/{test_id}/data-points", "/api/tokens",
        ],
        "PATCH": ["/api/data-sources/{source_id}", "/api/spaces/{space_id}", "/api/tests/{test_id}"],
    }.items()
    for path in paths
}  # fmt: skip


@pytest.fixture
def objects(client: TestClient, factory: Any) -> Iterator[Objects]:
    made = _objects(client, factory)
    yield made
    # after every operation's cases: the token and the objects did get them past the gates
    assert made.not_reached(sorted(REACHED)) == []


@pytest.fixture
def api(app: Any, objects: Objects) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)


schema = schemathesis.pytest.from_fixture("api")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case: Any, objects: Objects) -> None:
    headers = objects.use(case)
    response = case.call_and_validate(headers=headers, checks=CHECKS)
    objects.answered[f"{case.method.upper()} {case.path}"].add(response.status_code)


def test_every_operation_documents_its_problem_answers(client):
    document = client.get("/openapi.json").json()
    problem = {"$ref": "#/components/schemas/ProblemDetails"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            answers = operation["responses"]
            assert "429" in answers, (method, path)
            if operation.get("security"):
                assert {"401", "403", "404"} <= set(answers), (method, path)
            if "requestBody" in operation:
                assert {"400", "413", "415", "422"} <= set(answers), (method, path)
            for status, answer in answers.items():
                if int(status) >= 400:
                    assert answer["content"] == {"application/problem+json": {"schema": problem}}


def test_a_405_allows_every_method_of_its_path(client):
    response = client.request("OPTIONS", "/api/data-points")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.json()["detail"] == (
        "OPTIONS is not allowed on /api/data-points; allowed: GET, POST"
    )
    one = client.request("PUT", "/api/tests/3b241101-e2bb-4255-8caf-4136c566a962")
    assert one.headers["allow"] == "GET, PATCH, DELETE"
