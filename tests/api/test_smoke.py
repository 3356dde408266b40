from tests.factories import EXAMPLE_CONFIG, user_headers


def test_health_reports_database_ok(client):
    body = client.get("/api/health").json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"


def test_source_roundtrip_hides_secret(client, factory):
    _, headers = user_headers(client, factory)
    r = client.post(
        "/api/data-sources",
        headers=headers,
        json={"name": "ex", "type": "example", "config": EXAMPLE_CONFIG},
    )
    assert r.status_code == 201, r.text
    assert r.json()["config"]["apiKey"] == {"set": True}
    assert "sk-example" not in r.text
