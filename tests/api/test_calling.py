"""The API's `calling` type: one integration type whose config names its platform; each
platform validated by its own schema, stored as its own connector and shown as `calling`."""

from __future__ import annotations

from inflow.connectors import get_connector
from inflow.sandbox.twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.api.objects import field_errors, person

TWILIO = {"platform": "twilio", "accountSid": ACCOUNT_SID, "authToken": AUTH_TOKEN}


def test_calling_is_one_type_with_a_schema_per_platform(client, factory):
    _, headers = person(factory)

    types = {t["type"]: t for t in client.get("/api/integrations/types", headers=headers).json()}

    calling = types["calling"]
    assert calling["category"] == "calling"
    schema = calling["configSchema"]
    assert schema["discriminator"] == {"propertyName": "platform"}
    platforms = {s["properties"]["platform"]["const"] for s in schema["oneOf"]}
    assert {"twilio", "aircall"} <= platforms
    assert not {"twilio", "aircall"} & set(types)  # members are shown through the family
    keys = {m["key"] for m in calling["metrics"]}
    assert {"total_calls", "answered_calls", "missed_calls", "answer_rate"} <= keys
    twilio = next(s for s in schema["oneOf"] if s["properties"]["platform"]["const"] == "twilio")
    assert twilio["properties"]["authToken"]["writeOnly"] is True


def test_a_calling_source_is_stored_as_its_platform_and_shown_as_calling(client, factory):
    _, headers = person(factory)

    response = client.post(
        "/api/data-sources",
        headers=headers,
        json={"name": "Support line", "type": "calling", "config": TWILIO},
    )

    assert response.status_code == 201, response.text
    source = response.json()
    assert source["type"] == "calling"
    assert source["config"]["platform"] == "twilio"
    assert source["config"]["authToken"] == {"set": True}
    assert source["webhookUrl"].endswith(f"/api/webhooks/{source['id']}")
    listed = client.get("/api/data-sources", headers=headers).json()
    assert [s["type"] for s in listed] == ["calling"]
    assert get_connector("twilio").family == "calling"


def test_a_missing_or_unknown_platform_is_a_422_naming_the_choices(client, factory):
    _, headers = person(factory)

    def create(config):
        body = {"name": "x", "type": "calling", "config": config}
        return client.post("/api/data-sources", headers=headers, json=body)

    missing = create({"accountSid": ACCOUNT_SID})
    unknown = create({"platform": "skype"})
    wrong_fields = create({"platform": "twilio", "accountSid": "not-a-sid"})

    assert (missing.status_code, unknown.status_code, wrong_fields.status_code) == (422,) * 3
    assert "choose one of: aircall" in field_errors(missing)["config.platform"]
    assert "'skype' is not one" in field_errors(unknown)["config.platform"]
    assert any(f.startswith("config.") for f in field_errors(wrong_fields))


def test_validate_checks_the_platform_schema(client, factory):
    _, headers = person(factory)

    good = client.post(
        "/api/integrations/calling/validate", headers=headers, json={"config": TWILIO}
    )
    bad = client.post(
        "/api/integrations/calling/validate",
        headers=headers,
        json={"config": {"platform": "twilio"}},
    )

    assert good.json() == {"valid": True, "errors": []}
    assert bad.json()["valid"] is False
    assert bad.json()["errors"]
