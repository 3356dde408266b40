"""The Marketplace routes of API.md through the real API, database and in-process sandbox:
the catalog, install (secrets to the vault), installations, test, a sync that answers with the
changed items and puts them in a space, ownership (404), a serviceId mismatch (400), audit."""

from __future__ import annotations

from sqlalchemy import select

from inflow.sandbox.grafana import TOKEN
from inflow.storage.models import AuditEvent
from tests.sync.helpers import SANDBOX_HOST, person

GRAFANA = {"baseUrl": f"{SANDBOX_HOST}/grafana", "apiKey": TOKEN}


def install(client, headers, body=None, service="grafana"):
    body = body or {"config": GRAFANA}
    response = client.post(
        f"/api/marketplace/plugins/{service}/install", headers=headers, json=body
    )
    assert response.status_code == 201, response.text
    return response.json()


def space(client, headers, name="BI"):
    response = client.post("/api/spaces", headers=headers, json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_the_catalog_lists_the_three_bi_plugins_with_their_access_types(client, factory):
    _, headers = person(factory)

    plugins = {
        p["serviceId"]: p for p in client.get("/api/marketplace/plugins", headers=headers).json()
    }

    assert set(plugins) == {"powerbi", "grafana", "looker_studio"}
    assert plugins["powerbi"]["accessTypes"] == ["api", "sdk", "embed", "public"]
    assert plugins["looker_studio"]["authTypes"] == ["oauth2_authorization_code"]
    assert plugins["grafana"]["title"] == "Grafana"
    assert all(p["description"] for p in plugins.values())


def test_install_keeps_the_secret_and_lists_only_plugin_installations(client, factory):
    _, headers = person(factory)
    made = install(client, headers)
    other = client.post(
        "/api/data-sources",
        headers=headers,
        json={"name": "not a plugin", "type": "example", "config": {"apiKey": "sk_test_x_0001"}},
    )
    assert other.status_code == 201, other.text

    listed = client.get("/api/marketplace/installations", headers=headers).json()

    assert made["type"] == "grafana"
    assert made["name"] == "Grafana"
    assert made["config"]["apiKey"] == {"set": True}
    assert [i["id"] for i in listed] == [made["id"]]


def test_a_sync_answers_with_the_items_and_puts_them_in_the_space(client, factory):
    _, headers = person(factory)
    made = install(client, headers)
    space_id = space(client, headers)
    action = {"installationId": made["id"], "spaceId": space_id}

    tested = client.post("/api/marketplace/plugins/grafana/test", headers=headers, json=action)
    first = client.post("/api/marketplace/plugins/grafana/sync", headers=headers, json=action)
    again = client.post("/api/marketplace/plugins/grafana/sync", headers=headers, json=action)
    reports = client.get(f"/api/spaces/{space_id}/reports", headers=headers).json()
    health = client.get(f"/api/data-sources/{made['id']}", headers=headers).json()["health"]

    assert tested.json()["success"] is True, tested.text
    assert health["status"] == "ok"
    body = first.json()
    assert body["success"] is True, body
    assert body["count"] == len(body["items"]) > 0
    assert {i["action"] for i in body["items"]} == {"created"}
    assert {r["id"] for r in reports} == {i["id"] for i in body["items"]}
    assert {r["serviceId"] for r in reports} == {"grafana"}
    assert (again.json()["success"], again.json()["count"]) == (True, 0)  # nothing duplicated
    assert f"{body['count']} reports and dashboards" in again.json()["message"]


def test_a_stranger_gets_404_and_a_wrong_service_id_400(client, factory):
    _, owner = person(factory)
    _, stranger = person(factory)
    made = install(client, owner)
    action = {"installationId": made["id"]}

    foreign = client.post("/api/marketplace/plugins/grafana/sync", headers=stranger, json=action)
    wrong = client.post("/api/marketplace/plugins/powerbi/test", headers=owner, json=action)
    unknown = client.post("/api/marketplace/plugins/example/test", headers=owner, json=action)

    assert foreign.status_code == 404, foreign.text
    assert foreign.json()["detail"] == f"data source {made['id']} not found"
    assert wrong.status_code == 400, wrong.text
    assert "grafana" in wrong.json()["detail"]
    assert unknown.status_code == 404, unknown.text


def test_a_strangers_space_is_refused_and_nothing_moves(client, factory):
    _, owner = person(factory)
    _, stranger = person(factory)
    made = install(client, owner)
    theirs = space(client, stranger, "theirs")

    response = client.post(
        "/api/marketplace/plugins/grafana/sync",
        headers=owner,
        json={"installationId": made["id"], "spaceId": theirs},
    )

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "spaceId"
    assert client.get(f"/api/data-sources/{made['id']}/runs", headers=owner).json() == []


def test_install_test_and_sync_are_audited(client, factory):
    user, headers = person(factory)
    made = install(client, headers)
    action = {"installationId": made["id"]}
    client.post("/api/marketplace/plugins/grafana/test", headers=headers, json=action)
    client.post("/api/marketplace/plugins/grafana/sync", headers=headers, json=action)

    with factory() as session:
        events = session.execute(
            select(AuditEvent.action, AuditEvent.outcome).where(AuditEvent.actor == user.email)
        ).all()

    assert {("marketplace.install", "success"), ("marketplace.test", "success")} <= set(events)
    assert ("marketplace.sync", "success") in set(events)
