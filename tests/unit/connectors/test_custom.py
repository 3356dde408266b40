"""The custom source's pieces without a server: the push signature (good, wrong secret,
tampered, stale, replayed under a new id, missing headers), the mapping (records, metric names,
timestamps, periods across DST, aggregations, dimensions), next links and the metrics a source
declares."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from inflow.connectors import custom
from inflow.connectors.runtime import plain_values
from inflow.connectors.spec import WebhookRequest, Window
from inflow.errors import ValidationFailedError, WebhookSignatureError
from inflow.sandbox import custom as emulator

SECRET = "whsec_unit_test_secret_01"
MAPPING = {
    "records": "$.data[*]",
    "metric": "$.event",
    "timestamp": "$.at",
    "value": "$.n",
    "dimensions": {"region": "$.place.region"},
}
PARIS = ZoneInfo("Europe/Paris")


def config(**changes: Any) -> custom.CustomConfig:
    raw = {"secret": SECRET, "mapping": MAPPING, **changes}
    return custom.CustomConfig.model_validate(raw)


def mapping(**changes: Any) -> custom.FieldMapping:
    return custom.FieldMapping.model_validate({**MAPPING, **changes})


def signed(
    body: bytes, *, secret: str = SECRET, ts: int | None = None, event_id: str = "evt_1"
) -> WebhookRequest:
    """A push signed as docs/webhooks-custom.md says (written out here, not imported)."""
    stamp = str(int(time.time()) if ts is None else ts)
    mac = hmac.new(secret.encode(), f"{stamp}.{event_id}.".encode() + body, hashlib.sha256)
    headers = {
        "x-inflow-signature": f"sha256={mac.hexdigest()}",
        "x-inflow-timestamp": stamp,
        "x-inflow-event-id": event_id,
    }
    return WebhookRequest(url="https://inflow.test/api/webhooks/x", headers=headers, body=body)


ITEMS = [
    {"event": "calls", "at": "2026-03-02T10:00:00Z", "n": 3, "place": {"region": "eu"}},
    {"event": "calls", "at": "2026-03-02T11:00:00Z", "n": 4, "place": {"region": "eu"}},
    {"event": "calls", "at": "2026-03-03T09:00:00Z", "n": 5},
]


# ---------------------------------------------------------------- signature


def test_a_good_signature_gives_one_event_with_its_points():
    body = orjson.dumps({"data": ITEMS})
    ts = int(time.time())

    (event,) = custom.verify(signed(body, ts=ts), config())

    assert event.id == "evt_1"
    assert event.at == datetime.fromtimestamp(ts, UTC)
    points = {(p.metric, p.period_start.date().isoformat(), p.dimensions_key, p.value)
              for p in event.records}  # fmt: skip
    assert points == {
        ("calls", "2026-03-02", "region=eu", 7.0),
        ("calls", "2026-03-03", "", 5.0),  # no region: the dimension is left out
    }


def test_a_list_body_is_the_items_themselves():
    (event,) = custom.verify(signed(orjson.dumps(ITEMS)), config())
    assert len(event.records) == 2


def _tampered(body: bytes) -> WebhookRequest:
    good = signed(body)
    return WebhookRequest(good.url, good.headers, body.replace(b'"n":3', b'"n":30'))


def _renamed(request: WebhookRequest) -> WebhookRequest:
    return _with(request, "x-inflow-event-id", "evt_2")


def _with(request: WebhookRequest, name: str, value: str) -> WebhookRequest:
    return WebhookRequest(request.url, {**request.headers, name: value}, request.body)


def _without(request: WebhookRequest, name: str) -> WebhookRequest:
    headers = {k: v for k, v in request.headers.items() if k != name}
    return WebhookRequest(request.url, headers, request.body)


@pytest.mark.parametrize(
    ("request_of", "says"),
    [
        (lambda b: signed(b, secret="whsec_someone_elses_0001"), "does not match"),
        (_tampered, "does not match"),
        (lambda b: _renamed(signed(b)), "does not match"),
        (lambda b: _without(signed(b), "x-inflow-signature"), "missing header(s): x-inflow-sig"),
        (lambda b: _without(signed(b), "x-inflow-event-id"), "missing header(s): x-inflow-event"),
        (lambda b: _with(signed(b), "x-inflow-timestamp", "yesterday"), "must be unix seconds"),
    ],
    ids=[
        "wrong_secret",
        "tampered_body",
        "replayed_under_new_id",
        "unsigned",
        "no_event_id",
        "bad_timestamp",
    ],
)
def test_a_forged_push_is_refused(request_of, says):
    with pytest.raises(WebhookSignatureError, match=r".*") as caught:
        custom.verify(request_of(orjson.dumps(ITEMS)), config())
    assert says in caught.value.message
    assert SECRET not in caught.value.message


def test_a_stale_timestamp_is_handed_on_for_the_route_to_refuse():
    stale = int(time.time()) - 600

    (event,) = custom.verify(signed(orjson.dumps(ITEMS), ts=stale), config())

    # the route refuses events older than the webhook's max_age (a 401, tested end to end)
    assert event.at is not None
    assert datetime.now(UTC) - event.at > custom.CONNECTOR.webhook.max_age  # type: ignore[union-attr]


def test_a_source_without_a_secret_takes_no_push():
    pull_only = custom.CustomConfig.model_validate(
        {"apiUrl": "https://metrics.example/api", "mapping": MAPPING}
    )
    with pytest.raises(WebhookSignatureError, match="no secret"):
        custom.verify(signed(orjson.dumps(ITEMS)), pull_only)


def test_a_signed_push_with_a_bad_item_is_refused_naming_it():
    items = [*ITEMS, {"event": "calls", "at": "2026-03-02", "n": True}, {"at": "2026-03-02"}]
    with pytest.raises(ValidationFailedError) as caught:
        custom.verify(signed(orjson.dumps(items)), config())
    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("body.3", "the value at $.n is True, not a number"),
        ("body.4", "no metric name at $.event"),
    ]


def test_the_emulator_signs_as_the_connector_checks():
    body, ts = b'[{"a": 1}]', "1767225600"
    theirs = emulator.sign(SECRET, ts, "evt_9", body)
    assert theirs == custom.signature(SECRET, ts, "evt_9", body)


# ---------------------------------------------------------------- mapping


@pytest.mark.parametrize(
    ("body", "path", "count"),
    [
        ({"data": [{"n": 1}, {"n": 2}]}, "$.data[*]", 2),
        ({"data": [{"n": 1}, {"n": 2}]}, "data", 2),
        ([{"n": 1}, {"n": 2}, {"n": 3}], "$", 3),
        ({"n": 1}, "$", 1),
        ({"data": [{"k": "a"}, {"k": "b"}]}, "$.data[?(@.k == 'b')]", 1),
        ({"other": []}, "$.data[*]", 0),
    ],
    ids=["wildcard", "bare_name", "list_body", "object_body", "filter", "nothing"],
)
def test_records_finds_the_items(body, path, count):
    assert len(custom.records_of(body, path)) == count


@pytest.mark.parametrize(
    ("raw", "zone", "moment"),
    [
        ("2026-03-02T10:15:00Z", UTC, datetime(2026, 3, 2, 10, 15, tzinfo=UTC)),
        ("2026-03-02T10:15:00+02:00", UTC, datetime(2026, 3, 2, 8, 15, tzinfo=UTC)),
        ("2026-03-02T10:15:00", PARIS, datetime(2026, 3, 2, 9, 15, tzinfo=UTC)),
        ("2026-03-02", PARIS, datetime(2026, 3, 1, 23, 0, tzinfo=UTC)),
        (1772446500, UTC, datetime(2026, 3, 2, 10, 15, tzinfo=UTC)),
        (1772446500000, UTC, datetime(2026, 3, 2, 10, 15, tzinfo=UTC)),
        ("1772446500", UTC, datetime(2026, 3, 2, 10, 15, tzinfo=UTC)),
    ],
    ids=["utc", "offset", "naive_in_zone", "date_in_zone", "epoch_s", "epoch_ms", "epoch_text"],
)
def test_timestamps(raw, zone, moment):
    item = {"event": "m", "at": raw, "n": 1}
    assert custom.read_item(item, mapping(), zone).at == moment


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"event": "m", "at": "2026-03-02", "n": "n/a"}, "the value at $.n is 'n/a', not a number"),
        ({"event": "m", "at": "2026-03-02"}, "no value at $.n"),
        ({"event": "m", "at": "2026-03-02", "n": {"v": 1}}, "is {'v': 1}, not a number"),
        ({"event": "m", "at": "2026-03-02", "n": "inf"}, "not a finite number"),
        ({"event": "m", "at": "soon", "n": 1}, "the timestamp at $.at is 'soon'"),
        ({"event": "m", "n": 1}, "no timestamp at $.at"),
        ({"event": ["m"], "at": "2026-03-02", "n": 1}, "no metric name at $.event"),
        ({"event": "m", "at": "2026-03-02", "n": 1, "place": {"region": {}}}, "not a value"),
    ],
    ids=[
        "text",
        "missing",
        "object",
        "infinite",
        "bad_time",
        "no_time",
        "list_metric",
        "object_dimension",
    ],
)
def test_an_unreadable_item_says_why(item, reason):
    readings, skipped = custom.read_items([item], mapping(), UTC)
    assert readings == []
    assert reason in skipped[0][1]


def test_a_reserved_word_in_a_path_gets_a_hint():
    with pytest.raises(ValueError, match=r"written quoted: \$\['where'\]"):
        mapping(value="$.where.n")
    assert (
        custom.read_item(
            {"where": {"n": 2}, "event": "m", "at": "2026-03-02"},
            mapping(value="$['where'].n"),
            UTC,
        ).value
        == 2
    )


def test_a_numeric_string_is_a_number_and_a_constant_metric_is_the_key():
    item = {"at": "2026-03-02", "n": "12.50", "place": {"region": True}}
    reading = custom.read_item(item, mapping(metric="revenue"), UTC)
    assert (reading.metric, reading.value, reading.dimensions) == (
        "revenue",
        12.5,
        (("region", "true"),),
    )


@pytest.mark.parametrize(
    ("granularity", "moment", "start", "hours"),
    [
        (
            "hour",
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
            datetime(2026, 10, 25, 0, tzinfo=UTC),
            1,
        ),
        ("day", datetime(2026, 10, 25, 12, tzinfo=UTC), datetime(2026, 10, 24, 22, tzinfo=UTC), 25),
        ("day", datetime(2026, 3, 29, 12, tzinfo=UTC), datetime(2026, 3, 28, 23, tzinfo=UTC), 23),
        ("week", datetime(2026, 3, 5, 12, tzinfo=UTC), datetime(2026, 3, 1, 23, tzinfo=UTC), 168),
        (
            "month",
            datetime(2026, 3, 31, 23, tzinfo=UTC),
            datetime(2026, 3, 31, 22, tzinfo=UTC),
            720,
        ),
    ],
    ids=["hour", "day_of_25_hours", "day_of_23_hours", "iso_week", "month"],
)
def test_periods_are_wall_clock_in_the_zone(granularity, moment, start, hours):
    got_start, got_end = custom.period(moment, granularity, PARIS)
    assert got_start == start
    assert got_end - got_start == timedelta(hours=hours)


@pytest.mark.parametrize(
    ("rule", "value", "weight"),
    [
        ("sum", 12.0, None),
        ("average", 4.0, 3.0),
        ("last", 2.0, None),
        ("max", 7.0, None),
        ("min", 2.0, None),
    ],
)
def test_readings_of_a_period_combine_by_the_metrics_rule(rule, value, weight):
    items = [
        {"event": "m", "at": "2026-03-02T09:00:00Z", "n": 3},
        {"event": "m", "at": "2026-03-02T18:00:00Z", "n": 2},  # the latest
        {"event": "m", "at": "2026-03-02T12:00:00Z", "n": 7},
    ]
    fields = mapping(aggregations={"m": rule}, units={"m": "seconds"})
    readings, _ = custom.read_items(items, fields, UTC)

    (point,) = custom.points(readings, fields, "UTC", now=datetime(2026, 3, 3, tzinfo=UTC))

    assert (point.value, point.weight, point.unit, point.complete) == (
        value,
        weight,
        "seconds",
        True,
    )


def test_a_period_not_over_is_incomplete_and_a_window_keeps_its_own_readings():
    items = [{"event": "m", "at": f"2026-03-0{d}T10:00:00Z", "n": d} for d in (1, 2, 3)]
    readings, _ = custom.read_items(items, mapping(), UTC)
    now = datetime(2026, 3, 3, 12, tzinfo=UTC)
    within = (datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC))

    found = custom.points(readings, mapping(), "UTC", now=now, within=within)

    assert sorted((p.period_start.day, p.complete) for p in found) == [(2, True), (3, False)]


# ---------------------------------------------------------------- pull: pages and skips


@dataclass
class FakeContext:
    """The connector's view of the runtime: config values, JSON by URL, skipped reasons."""

    config: Any
    bodies: Mapping[str, Any]
    window: Window | None = None
    parent: Mapping[str, Any] | None = None
    asked: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    async def get_json(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        assert params is None
        url = path.format_map({})  # the runtime renders templates: braces come back doubled
        self.asked.append(url)
        return self.bodies[url]

    async def post_json(self, path: str, *, json: Any = None) -> Any:
        raise AssertionError(f"no POST expected: {path} {json}")

    def skip(self, reason: str) -> None:
        self.skipped.append(reason)


async def _pages(ctx: FakeContext) -> list[list[Any]]:
    return [page async for page in custom.read_pages(ctx)]


@pytest.mark.anyio
async def test_next_links_are_followed_relative_or_absolute_and_a_loop_ends():
    base = "https://metrics.example/api/v1/items?q={x}"
    bodies = {
        "https://metrics.example/api/v1/items?q={x}": {"data": [{"n": 1}], "next": "items?p=2"},
        "https://metrics.example/api/v1/items?p=2": {
            "data": [{"n": 2}], "next": "https://metrics.example/api/v1/items?p=3"},
        "https://metrics.example/api/v1/items?p=3": {"data": [], "next": "items?p=2"},
    }  # fmt: skip
    values = plain_values(config(apiUrl=base, mapping={**MAPPING, "next": "$.next"}))
    ctx = FakeContext(values, bodies)

    pages = await _pages(ctx)

    assert pages == [[{"n": 1}], [{"n": 2}], []]
    assert len(ctx.asked) == 3  # p=3 links back to p=2: read once


@pytest.mark.anyio
async def test_a_push_only_source_reads_nothing():
    ctx = FakeContext(plain_values(config()), {})
    assert await _pages(ctx) == []
    assert ctx.asked == []


def test_reduce_skips_and_reports_bad_items():
    ctx = FakeContext(plain_values(config(apiUrl="https://m.example/x")), {})
    items = [*ITEMS, {"event": "calls", "at": "2026-03-02", "n": "-"}]

    found = custom.reduce(items, ctx)  # type: ignore[arg-type]

    assert len(found) == 2
    assert ctx.skipped == ["item 3: the value at $.n is '-', not a number"]


# ---------------------------------------------------------------- declared metrics


def test_a_source_declares_its_metrics_and_their_rules():
    stored = {"mapping": {**MAPPING, "metric": "calls", "aggregations": {"wait": "average"},
                          "units": {"wait": "seconds"}}}  # fmt: skip

    calls = custom.CONNECTOR.metric("calls", stored)
    wait = custom.CONNECTOR.metric("wait", stored)

    assert calls is not None
    assert calls.aggregation == "sum"
    assert wait is not None
    assert (wait.aggregation, wait.unit) == ("average", "seconds")
    assert custom.CONNECTOR.metric("other", stored) is None  # a constant key names its metric
    assert custom.CONNECTOR.metric("other", {"mapping": MAPPING}) is not None  # from a path
    assert custom.CONNECTOR.metric("calls") is None  # no config: the catalog has none


@pytest.mark.parametrize("path", ["$.a.b", "a.b", "$['a'].b", "$", "@.a", "$.a", "$.z.b"])
@pytest.mark.parametrize(
    "item",
    [{"a": {"b": 1}}, {"a": {"b": None}}, {"a": [{"b": 2}]}, {"a": 3}, [1, 2], {"z": {}}],
    ids=["nested", "null", "list", "scalar", "list_item", "empty"],
)
def test_plain_paths_are_looked_up_as_the_matcher_would(path, item):
    assert custom._plain(path) is not None
    found = custom.compiled(path).find(item)
    assert custom.first(path, item) == (found[0].value if found else custom._NOTHING)


def test_the_config_schema_stands_alone_inside_the_calling_type():
    schema = custom.CONNECTOR.config_schema()
    assert "$ref" not in orjson.dumps(schema).decode()  # the family's oneOf has no $defs
    assert schema["properties"]["mapping"]["required"] == ["metric", "timestamp", "value"]
    assert schema["properties"]["secret"]["writeOnly"] is True
    assert schema["properties"]["headerValue"]["writeOnly"] is True
