"""The error model through the real app: problem+json everywhere, body limits, request ids,
OpenAPI and the offline Swagger UI."""

from __future__ import annotations

import asyncio
import re
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import structlog

from inflow.api.app import create_app
from tests.api.objects import assert_problem, person

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

LIMIT = 256


@pytest.fixture
def small_app(settings, engine):
    """The app with a request body limit of ``LIMIT`` bytes."""
    return create_app(
        settings.model_copy(update={"max_body_bytes": LIMIT}), engine=engine, migrate=False
    )


@pytest.fixture
def small_client(small_app) -> Iterator[TestClient]:
    with TestClient(small_app) as c:
        yield c


@pytest.fixture
def crashing_client(app) -> Iterator[TestClient]:
    """A client whose app has one route that fails with an unexpected exception."""

    def crash() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/api/test-crash", crash, methods=["GET"])
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _space_body(size: int) -> bytes:
    """A valid JSON space body of exactly ``size`` bytes."""
    skeleton = b'{"name": "x", "description": ""}'
    return skeleton.replace(b'""}', b'"' + b"d" * (size - len(skeleton)) + b'"}')


# ---------------------------------------------------------------- problem+json


def _cases(client, headers) -> dict[str, Any]:
    return {
        "unauthenticated": client.get("/api/spaces"),
        "bad_token": client.get("/api/spaces", headers={"Authorization": "Bearer ifl_nope"}),
        "admin_only": client.get("/api/audit", headers=headers),
        "unknown_route": client.get("/api/nothing-here", headers=headers),
        "unknown_object": client.get(f"/api/spaces/{uuid.uuid4()}", headers=headers),
        "wrong_method": client.put("/api/spaces", headers=headers),
        "malformed_json": client.post(
            "/api/spaces", headers={**headers, "Content-Type": "application/json"}, content=b"{"
        ),
        "not_json": client.post(
            "/api/spaces",
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
            content=b"name=x",
        ),
        "invalid_field": client.post("/api/spaces", headers=headers, json={"name": ""}),
        "malformed_id": client.get("/api/spaces/not-a-uuid", headers=headers),
    }


EXPECTED_STATUS = {
    "unauthenticated": 401,
    "bad_token": 401,
    "admin_only": 403,
    "unknown_route": 404,
    "unknown_object": 404,
    "wrong_method": 405,
    "malformed_json": 400,
    "not_json": 415,
    "invalid_field": 422,
    "malformed_id": 422,
}


def test_errors_are_problem_json_with_type_title_status_detail(client, factory):
    _, headers = person(factory)

    responses = _cases(client, headers)

    assert {name: r.status_code for name, r in responses.items()} == EXPECTED_STATUS
    for name, r in responses.items():
        body = assert_problem(r, EXPECTED_STATUS[name])
        assert set(body) <= {"type", "title", "status", "detail", "errors"}, name
        if r.status_code == 422:
            assert body["errors"]
            assert all(set(e) == {"field", "message"} for e in body["errors"])


def test_errors_malformed_json_is_400_saying_so(client, factory):
    _, headers = person(factory)

    r = client.post(
        "/api/spaces",
        headers={**headers, "Content-Type": "application/json"},
        content=b'{"name": "x",}',
    )

    body = assert_problem(r, 400)
    assert body["detail"].startswith("the request body is not valid JSON: ")
    assert "errors" not in body
    assert client.get("/api/spaces", headers=headers).json() == []


def test_errors_body_without_json_content_type_is_415(client, factory):
    _, headers = person(factory)

    r = client.post("/api/spaces", headers=headers, content=b'{"name": "x"}')

    body = assert_problem(r, 415)
    assert "Content-Type: application/json" in body["detail"]


def test_errors_unknown_route_is_404_problem(client):
    body = assert_problem(client.get("/api/nothing-here"), 404)

    assert body["detail"] == "no route for GET /api/nothing-here"


def test_errors_wrong_method_is_405_problem_with_allow(client):
    r = client.delete("/api/health")

    body = assert_problem(r, 405)
    assert r.headers["allow"] == "GET"
    assert "DELETE" in body["detail"]
    assert "/api/health" in body["detail"]


def test_errors_unhandled_exception_is_500_problem_with_request_id(crashing_client):
    # capture_logs also spares rendering a traceback with locals (seconds with rich).
    with structlog.testing.capture_logs() as logs:
        r = crashing_client.get("/api/test-crash", headers={"X-Request-ID": "crash-123"})

    body = assert_problem(r, 500)
    assert "boom" not in r.text
    assert "X-Request-ID" in body["detail"]
    assert r.headers["x-request-id"] == "crash-123"
    crash = next(e for e in logs if e["event"] == "unhandled error")
    assert crash["request_id"] == "crash-123"
    assert crash["log_level"] == "error"


# ---------------------------------------------------------------- body size


def test_errors_body_over_limit_by_content_length_is_413(small_client, factory):
    _, headers = person(factory)
    body = _space_body(LIMIT + 1)

    r = small_client.post(
        "/api/spaces", headers={**headers, "Content-Type": "application/json"}, content=body
    )

    assert r.request.headers["content-length"] == str(LIMIT + 1)
    problem = assert_problem(r, 413)
    assert str(LIMIT) in problem["detail"]
    assert small_client.get("/api/spaces", headers=headers).json() == []


def test_errors_body_at_limit_is_accepted(small_client, factory):
    _, headers = person(factory)

    r = small_client.post(
        "/api/spaces",
        headers={**headers, "Content-Type": "application/json"},
        content=_space_body(LIMIT),
    )

    assert r.status_code == 201, r.text


def test_errors_streamed_body_over_limit_is_413(small_client, factory):
    _, headers = person(factory)

    def chunks() -> Iterator[bytes]:
        yield _space_body(LIMIT + 1)

    r = small_client.post(
        "/api/spaces", headers={**headers, "Content-Type": "application/json"}, content=chunks()
    )

    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert_problem(r, 413)
    assert small_client.get("/api/spaces", headers=headers).json() == []


def _post_in_chunks(app, headers: dict[str, str], body: bytes, size: int) -> httpx.Response:
    """POST ``body`` to /api/spaces in ``size``-byte ASGI messages, without a Content-Length."""

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), size):
            yield body[start : start + size]

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            return await ac.post(
                "/api/spaces",
                headers={**headers, "Content-Type": "application/json"},
                content=chunks(),
            )

    return asyncio.run(send())


def test_errors_body_over_limit_in_small_chunks_is_413(small_app, small_client, factory):
    _, headers = person(factory)

    r = _post_in_chunks(small_app, headers, _space_body(LIMIT + 50), size=32)

    assert "content-length" not in r.request.headers
    assert_problem(r, 413)
    assert small_client.get("/api/spaces", headers=headers).json() == []


def test_errors_body_under_limit_in_small_chunks_is_accepted(small_app, small_client, factory):
    _, headers = person(factory)

    r = _post_in_chunks(small_app, headers, _space_body(LIMIT), size=32)

    assert r.status_code == 201, r.text
    assert len(small_client.get("/api/spaces", headers=headers).json()) == 1


# ---------------------------------------------------------------- request ids


def test_errors_every_response_has_a_request_id(client, small_client, factory):
    _, headers = person(factory)
    responses = [
        client.get("/api/health"),
        client.get("/openapi.json"),
        client.get("/docs"),
        client.get("/docs/static/swagger-ui.css"),
        client.post("/api/spaces", headers=headers, json={"name": "ok"}),
        *_cases(client, headers).values(),
        small_client.post("/api/spaces", headers=headers, content=b"x" * (LIMIT + 1)),
    ]

    ids = [r.headers.get("x-request-id") for r in responses]

    assert all(ids), [(r.request.url, r.status_code) for r in responses]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    "given",
    [
        pytest.param("req-42", id="simple"),
        pytest.param("A.b_c-9", id="punctuation"),
        pytest.param("x" * 64, id="longest"),
    ],
)
def test_errors_sane_request_id_is_echoed(client, given):
    r = client.get("/api/health", headers={"X-Request-ID": given})

    assert r.headers["x-request-id"] == given


@pytest.mark.parametrize(
    "given",
    [
        pytest.param("x" * 65, id="too_long"),
        pytest.param("has space", id="space"),
        pytest.param("<script>", id="markup"),
        pytest.param("", id="empty"),
    ],
)
def test_errors_odd_request_id_is_replaced(client, given):
    r = client.get("/api/health", headers={"X-Request-ID": given})

    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


def test_errors_request_id_with_trailing_newline_is_replaced(app):
    # No HTTP client sends this; an ASGI server or proxy might hand it on, so drive ASGI directly.
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/health",
        "raw_path": b"/api/health",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"x-request-id", b"abc\n")],
        "client": ("127.0.0.1", 1234),
        "server": ("test", 80),
        "state": {},
    }

    asyncio.run(app(scope, receive, send))

    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 200
    request_id = dict(start["headers"])[b"x-request-id"]
    assert re.fullmatch(rb"[0-9a-f]{32}", request_id)


# ---------------------------------------------------------------- OpenAPI and docs

OPERATION_IDS = {
    ("get", "/api/health"): "health-get",
    ("get", "/api/spaces"): "spaces-list",
    ("post", "/api/spaces"): "spaces-create",
    ("get", "/api/spaces/{space_id}"): "spaces-get",
    ("patch", "/api/spaces/{space_id}"): "spaces-update",
    ("delete", "/api/spaces/{space_id}"): "spaces-delete",
    ("get", "/api/spaces/{space_id}/members"): "spaces-members-list",
    ("post", "/api/spaces/{space_id}/members"): "spaces-members-add",
    ("get", "/api/spaces/{space_id}/reports"): "spaces-reports",
    ("get", "/api/data-sources"): "data-sources-list",
    ("post", "/api/data-sources"): "data-sources-create",
    ("get", "/api/data-sources/{source_id}"): "data-sources-get",
    ("patch", "/api/data-sources/{source_id}"): "data-sources-update",
    ("delete", "/api/data-sources/{source_id}"): "data-sources-delete",
    ("get", "/api/integrations/types"): "integrations-types",
    ("get", "/api/integrations/{type}/metrics"): "integrations-metrics",
    ("post", "/api/integrations/{type}/validate"): "integrations-validate",
}


def test_openapi_operation_ids_are_stable(client):
    r = client.get("/openapi.json")

    assert r.status_code == 200
    spec = r.json()
    found = {
        (method, path): op.get("operationId")
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    }
    assert {key: found.get(key) for key in OPERATION_IDS} == OPERATION_IDS
    # Every operation names itself explicitly (FastAPI's generated ids change with the code).
    ids = list(found.values())
    assert all(i and re.fullmatch(r"[a-z]+(-[a-z]+)+", i) for i in ids), ids
    assert len(set(ids)) == len(ids)


def test_docs_serve_swagger_ui_from_local_files(client):
    r = client.get("/docs")

    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "SwaggerUIBundle" in html
    assert "/openapi.json" in html
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", html), "no CDN (or any remote) URLs"
    assets = re.findall(r"(?:src|href)=[\"']([^\"']+)[\"']", html)
    assert assets
    for asset in assets:
        assert asset.startswith("/docs/static/"), asset
        fetched = client.get(asset)
        assert fetched.status_code == 200, asset
        assert fetched.content
