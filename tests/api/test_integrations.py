"""Integration types through the real API, and the connector registry's entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import SecretStr

from inflow.connectors import listed, registry
from inflow.connectors.spec import Connector, ConnectorConfig
from tests.api.objects import SECRET, assert_problem, person
from tests.factories import EXAMPLE_CONFIG

TYPE_KEYS = {"type", "title", "category", "authType", "configSchema", "metrics"}
METRIC_KEYS = {"key", "label", "unit", "description"}


# ---------------------------------------------------------------- types and metrics


def test_integrations_types_lists_registry_with_schema_and_metrics(client, factory):
    _, headers = person(factory)

    r = client.get("/api/integrations/types", headers=headers)

    assert r.status_code == 200, r.text
    types = r.json()
    # every connector but a family's members (shown through the family: `calling`)
    assert [t["type"] for t in types] == sorted(c.slug for c in listed())
    assert {c.family for c in registry().values() if c.family} <= {t["type"] for t in types}
    for item in types:
        assert set(item) >= TYPE_KEYS
        schemas = item["configSchema"].get("oneOf", [item["configSchema"]])
        assert schemas
        assert all(s["type"] == "object" for s in schemas)
        assert all(set(m) == METRIC_KEYS for m in item["metrics"])
    for item in types:
        connector = registry()[item["type"]]
        assert (item["title"], item["category"], item["authType"]) == (
            connector.title,
            connector.category,
            connector.auth_type,
        )
        assert [m["key"] for m in item["metrics"]] == [m.key for m in connector.metrics]
    example = next(t for t in types if t["type"] == "example")
    assert example["metrics"]


def test_integrations_types_mark_secret_fields_write_only(client, factory):
    _, headers = person(factory)

    types = client.get("/api/integrations/types", headers=headers).json()

    for item in types:
        connector = registry()[item["type"]]
        members = list(connector.variants.values()) or [connector]
        schemas = item["configSchema"].get("oneOf", [item["configSchema"]])
        assert len(schemas) == len(members)
        for member, schema in zip(members, schemas, strict=True):
            secrets = set(member.config.secret_fields())
            for name, prop in schema["properties"].items():
                is_secret = prop.get("writeOnly") is True and prop.get("format") == "password"
                assert is_secret == (name in secrets), (member.slug, name)
    example = next(t for t in types if t["type"] == "example")["configSchema"]
    assert example["properties"]["apiKey"]["writeOnly"] is True
    assert example["properties"]["apiKey"]["format"] == "password"
    assert "writeOnly" not in example["properties"]["workspace"]
    assert example["required"] == ["apiKey"]


def test_connector_config_schema_marks_optional_secret_on_its_property():
    class TokenConfig(ConnectorConfig):
        account_id: str
        access_token: SecretStr | None = None

    connector = Connector(
        slug="tokens", title="Tokens", category="social", config=TokenConfig, auth_type="bearer"
    )

    props = connector.config_schema()["properties"]

    assert props["accessToken"]["writeOnly"] is True
    assert props["accessToken"]["format"] == "password"
    assert "writeOnly" not in props["accountId"]


def test_integrations_require_authentication(client):
    for method, url in [
        ("GET", "/api/integrations/types"),
        ("GET", "/api/integrations/example/metrics"),
        ("POST", "/api/integrations/example/validate"),
    ]:
        assert_problem(client.request(method, url, json={"config": {}}), 401)


def test_integrations_metrics_of_known_type(client, factory):
    _, headers = person(factory)

    r = client.get("/api/integrations/example/metrics", headers=headers)

    assert r.status_code == 200, r.text
    catalog = registry()["example"].metrics
    assert catalog
    assert r.json() == [
        {"key": m.key, "label": m.label, "unit": m.unit, "description": m.description}
        for m in catalog
    ]


@pytest.mark.parametrize(
    ("method", "suffix"),
    [pytest.param("GET", "metrics", id="metrics"), pytest.param("POST", "validate", id="validate")],
)
def test_integrations_unknown_type_is_404_listing_known_types(client, factory, method, suffix):
    _, headers = person(factory)

    r = client.request(
        method, f"/api/integrations/myspace/{suffix}", headers=headers, json={"config": {}}
    )

    body = assert_problem(r, 404)
    assert "'myspace'" in body["detail"]
    assert "example" in body["detail"]


def test_integrations_openapi_names_the_type_parameter_type(client):
    paths = client.get("/openapi.json").json()["paths"]

    assert "/api/integrations/{type}/metrics" in paths
    assert "/api/integrations/{type}/validate" in paths


# ---------------------------------------------------------------- validate


def test_integrations_validate_good_config(client, factory):
    _, headers = person(factory)

    r = client.post(
        "/api/integrations/example/validate", headers=headers, json={"config": EXAMPLE_CONFIG}
    )

    assert r.status_code == 200, r.text
    assert r.json() == {"valid": True, "errors": []}
    assert client.get("/api/data-sources", headers=headers).json() == []  # nothing saved


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param({}, {"config.apiKey": "Field required"}, id="empty"),
        pytest.param(
            {**EXAMPLE_CONFIG, "foo": "bar"}, {"config.foo": "unknown field"}, id="unknown_field"
        ),
        pytest.param(
            {"apiKey": "short", "workspace": "UPPER", "baseUrl": "ftp:/nope"},
            {"config.apiKey", "config.workspace", "config.baseUrl"},
            id="several",
        ),
    ],
)
def test_integrations_validate_bad_config_lists_field_errors(client, factory, config, expected):
    _, headers = person(factory)

    r = client.post("/api/integrations/example/validate", headers=headers, json={"config": config})

    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"valid", "errors"}
    assert body["valid"] is False
    assert all(set(e) == {"field", "message"} and e["message"] for e in body["errors"])
    errors = {e["field"]: e["message"] for e in body["errors"]}
    if isinstance(expected, dict):
        assert errors == expected
    else:
        assert set(errors) == expected
    assert SECRET not in r.text


def test_integrations_validate_without_config_object_is_422(client, factory):
    _, headers = person(factory)

    r = client.post(
        "/api/integrations/example/validate", headers=headers, json={"config": ["apiKey"]}
    )

    body = assert_problem(r, 422)
    assert [e["field"] for e in body["errors"]] == ["config"]


# ---------------------------------------------------------------- entry points

THIRD_PARTY_MODULE = """
from pydantic import SecretStr
from inflow.connectors.spec import Connector, ConnectorConfig, MetricDef

class AcmeConfig(ConnectorConfig):
    account: str
    token: SecretStr

CONNECTOR = Connector(
    slug="acme", title="Acme Analytics", category="analytics", config=AcmeConfig,
    auth_type="bearer", metrics=(MetricDef("hits", "Hits"),),
)
NOT_A_CONNECTOR = {"slug": "fake"}
"""

PROBE = """
import json

from inflow.logging import configure_logging

configure_logging("INFO", "json")  # as `inflow serve` does: JSON lines on stderr
from inflow.connectors import listed, registry

found = registry()
acme = found.get("acme")
print(json.dumps({
    "slugs": sorted(found),
    "acme": acme and {"title": acme.title, "secrets": acme.config.secret_fields()},
}))
"""


def _distribution(root: Path, name: str, entry_points: str, modules: dict[str, str]) -> None:
    """An installed distribution as pip leaves it: a .dist-info folder next to its modules."""
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)


@pytest.fixture(scope="module")
def third_party(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter with a working and a broken third-party connector installed."""
    root = tmp_path_factory.mktemp("site")
    _distribution(
        root,
        "acme_connector",
        """
        [inflow.connectors]
        acme = acme_connector:CONNECTOR
        """,
        {"acme_connector": THIRD_PARTY_MODULE},
    )
    _distribution(
        root,
        "broken_connectors",
        """
        [inflow.connectors]
        crashes = broken_connector:CONNECTOR
        missing = acme_connector:NO_SUCH_NAME
        wrong_type = acme_connector:NOT_A_CONNECTOR
        """,
        {"broken_connector": "raise RuntimeError('this connector is broken')\n"},
    )
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_registry_discovers_third_party_entry_point(third_party):
    assert third_party.returncode == 0, third_party.stderr
    result = json.loads(third_party.stdout.strip().splitlines()[-1])

    assert "acme" in result["slugs"]
    assert "example" in result["slugs"]
    assert result["acme"] == {"title": "Acme Analytics", "secrets": ["token"]}


def test_registry_skips_broken_entry_points_with_a_log_line(third_party):
    assert third_party.returncode == 0, third_party.stderr
    result = json.loads(third_party.stdout.strip().splitlines()[-1])
    logs = [json.loads(line) for line in third_party.stderr.splitlines() if line.startswith("{")]
    skipped = {(e["event"], e.get("entry_point")): e for e in logs}

    assert not {"crashes", "missing", "wrong_type", "fake"} & set(result["slugs"])
    failed = "connector entry point failed to load"
    assert "this connector is broken" in skipped[(failed, "crashes")]["exception"]
    assert "NO_SUCH_NAME" in skipped[(failed, "missing")]["exception"]
    assert skipped[("entry point is not a Connector", "wrong_type")]["level"] == "warning"
