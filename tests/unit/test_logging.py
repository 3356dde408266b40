"""Structured logging: request ids from a real ``inflow serve``, redaction, both renderers."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import warnings
from collections.abc import Callable, Iterator

import httpx
import pytest
import structlog

from inflow.logging import configure_logging, get_logger
from tests.servers import InflowServer, inflow_env

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


# ---------------------------------------------------------------- a real server, JSON lines


@pytest.fixture(scope="module")
def json_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InflowServer]:
    workdir = tmp_path_factory.mktemp("logging")
    env = inflow_env(
        workdir / "data", f"sqlite:///{workdir / 'inflow.db'}", INFLOW_LOG_FORMAT="json"
    )
    server = InflowServer("serve", env=env, workdir=workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def json_lines(server: InflowServer) -> list[dict]:
    """Every complete line of the server's stderr, each of which must be a JSON object."""
    text = server.stderr
    complete = text[: text.rfind("\n") + 1]
    records = []
    for line in complete.splitlines():
        if line.strip():
            record = json.loads(line)  # a non-JSON line fails the test here
            assert isinstance(record, dict), line
            records.append(record)
    return records


def request_lines(server: InflowServer, request_id: str) -> list[dict]:
    return [
        r
        for r in json_lines(server)
        if r.get("event") == "request" and r.get("request_id") == request_id
    ]


def test_each_request_logs_one_json_line_with_the_response_request_id(json_server):
    with httpx.Client(base_url=json_server.base_url) as client:
        responses = [
            client.get("/api/health"),
            client.get("/api/me", headers={"X-Request-ID": "client-chosen.id_1"}),
            client.get("/api/no-such-route"),
            client.post("/api/auth/login", json={"email": "nobody@example.com", "password": "x"}),
        ]
    supplied = responses[1].headers["x-request-id"]
    assert supplied == "client-chosen.id_1"
    ids = [r.headers["x-request-id"] for r in responses]
    assert len(set(ids)) == len(ids)

    for response, request_id in zip(responses, ids, strict=True):
        json_server.wait_for(lambda rid=request_id: bool(request_lines(json_server, rid)))
        (line,) = request_lines(json_server, request_id)
        assert line["path"] == response.request.url.path
        assert line["method"] == response.request.method
        assert line["status"] == response.status_code
        assert line["level"] == "info"
        assert line["logger"] == "inflow.access"
    assert [r.status_code for r in responses] == [200, 401, 404, 401]


def test_an_unsafe_request_id_is_replaced(json_server):
    response = httpx.get(
        f"{json_server.base_url}/api/health", headers={"X-Request-ID": "two words;drop table"}
    )
    request_id = response.headers["x-request-id"]
    assert request_id != "two words;drop table"
    assert len(request_id) == 32
    json_server.wait_for(lambda: bool(request_lines(json_server, request_id)))
    assert "drop table" not in json_server.stderr


def test_query_strings_stay_out_of_the_log(json_server):
    # OAuth callbacks carry codes in the query; the request line logs the path alone.
    response = httpx.get(f"{json_server.base_url}/api/health?code=s3cr3t-code&state=abc")
    request_id = response.headers["x-request-id"]
    json_server.wait_for(lambda: bool(request_lines(json_server, request_id)))
    assert "s3cr3t-code" not in json_server.stderr
    assert request_lines(json_server, request_id)[0]["path"] == "/api/health"


def test_server_lines_outside_requests_are_json_too(json_server):
    records = json_lines(json_server)
    startup = [r for r in records if r.get("logger") == "uvicorn.error"]
    assert any("Application startup complete" in r["event"] for r in startup)
    assert all(r["request_id"] is None for r in startup)
    assert all({"timestamp", "level", "event"} <= r.keys() for r in records)


# ---------------------------------------------------------------- in process: processors


def fail(exc: Exception) -> None:
    raise exc


@pytest.fixture
def capture_logs() -> Iterator[Callable[[str], io.StringIO]]:
    """``configure_logging(fmt)`` writing to a buffer; the logging setup is restored after."""
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    saved_uvicorn = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
        for name in UVICORN_LOGGERS
    }

    def configure(fmt: str) -> io.StringIO:
        configure_logging("INFO", fmt)
        buffer = io.StringIO()
        (handler,) = root.handlers
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(buffer)
        return buffer

    yield configure
    root.handlers[:], level = saved_root
    root.setLevel(level)
    for name, (handlers, propagate) in saved_uvicorn.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).propagate = propagate
    logging.captureWarnings(False)
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "token",
        "authorization",
        "Authorization",
        "api_key",
        "apiKey",
        "x-api-key",
        "client_secret",
        "clientSecret",
        "access_token",
        "refreshToken",
        "auth_token",
        "set-cookie",
        "jwt",
        "password_hash",
    ],
)
def test_redaction_masks_secret_keys(capture_logs, key):
    out = capture_logs("json")
    get_logger("test.redact").info("event", **{key: "hunter2-value", "email": "a@example.com"})
    record = json.loads(out.getvalue())
    assert record[key] == "***"
    assert record["email"] == "a@example.com"
    assert "hunter2-value" not in out.getvalue()


def test_redaction_reaches_into_nested_values(capture_logs):
    out = capture_logs("json")
    get_logger("test.redact").info(
        "provider call",
        headers={"Authorization": "Bearer abc123", "Accept": "application/json"},
        configs=[{"clientSecret": "cs-999", "baseUrl": "https://example.com"}],
    )
    record = json.loads(out.getvalue())
    assert record["headers"] == {"Authorization": "***", "Accept": "application/json"}
    assert record["configs"] == [{"clientSecret": "***", "baseUrl": "https://example.com"}]
    assert "abc123" not in out.getvalue()
    assert "cs-999" not in out.getvalue()


def test_json_lines_carry_the_bound_request_id_and_tracebacks(capture_logs):
    out = capture_logs("json")
    structlog.contextvars.bind_contextvars(request_id="req-42")
    try:
        fail(ValueError("broken"))
    except ValueError:
        get_logger("test.json").exception("failed")
    logging.getLogger("test.stdlib").info("from the standard library %s", "too")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["request_id"] == "req-42"
    assert first["level"] == "error"
    assert "ValueError: broken" in first["exception"]
    assert second["event"] == "from the standard library too"
    assert second["request_id"] == "req-42"
    assert second["logger"] == "test.stdlib"


def test_python_warnings_become_json_lines(capture_logs):
    out = capture_logs("json")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("an old API", DeprecationWarning, stacklevel=1)
    (record,) = (json.loads(line) for line in out.getvalue().splitlines())
    assert record["logger"] == "py.warnings"
    assert "DeprecationWarning: an old API" in record["event"]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("tty", [False, True], ids=["piped", "terminal"])
def test_console_mode_renders_events_and_exceptions(capture_logs, capsys, monkeypatch, tty):
    if tty:  # colours and rich tracebacks, as in a terminal
        monkeypatch.setattr(sys, "stderr", FakeTerminal())
    out = capture_logs("console")
    log = get_logger("test.console")
    log.info("hello", password="hunter2", count=3)
    logging.getLogger("test.stdlib").warning("stdlib %s", "line")
    secret_local = "-".join(["local", "secret", "value"])  # a frame's locals are never shown
    try:
        fail(RuntimeError(f"boom {len(secret_local)}"))
    except RuntimeError:
        log.exception("it failed")
    text = ANSI.sub("", out.getvalue())
    assert "hello" in text
    assert "password=***" in text
    assert "count=3" in text
    assert "stdlib line" in text
    assert "it failed" in text
    assert "RuntimeError" in text
    assert "boom 18" in text
    assert "hunter2" not in text
    assert "local-secret-value" not in text
    assert not text.lstrip().startswith("{")  # not JSON
    assert "Logging error" not in capsys.readouterr().err  # the handler raised nothing
