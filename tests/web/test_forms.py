"""Forms generated from connectors' config schemas, and what a submitted form means."""

from __future__ import annotations

import pytest

from inflow.connectors import get_connector
from inflow.errors import FieldError, ValidationFailedError
from inflow.web.forms import config_from_form, errors_by_field, form_fields, shown_value


def fields_of(slug: str):
    connector = get_connector(slug)
    assert connector is not None
    return {f.name: f for f in form_fields(connector.config_schema())}


def test_twilio_fields_label_help_secret_and_platform():
    fields = fields_of("twilio")

    assert fields["platform"].kind == "hidden"
    assert fields["platform"].default == "twilio"
    assert fields["accountSid"].label == "Account SID"
    assert fields["accountSid"].required
    assert fields["accountSid"].placeholder.startswith("e.g. AC")
    token = fields["authToken"]
    assert (token.kind, token.secret, token.required) == ("password", True, False)
    assert "Auth Token" in token.help
    assert fields["baseUrl"].kind == "url"


def test_lists_and_objects_are_text_areas_read_back_as_values():
    powerbi = fields_of("powerbi")
    custom = fields_of("custom")
    assert powerbi["workspaceIds"].kind == "lines"
    assert custom["mapping"].kind == "json"

    config = config_from_form(
        [powerbi["workspaceIds"], custom["mapping"]],
        {"workspaceIds": " a \n\n b ", "mapping": '{"metric": "$.m"}'},
    )

    assert config == {"workspaceIds": ["a", "b"], "mapping": {"metric": "$.m"}}
    assert shown_value(powerbi["workspaceIds"], ["a", "b"]) == "a\nb"


def test_json_that_does_not_parse_is_an_error_at_its_field():
    mapping = fields_of("custom")["mapping"]

    with pytest.raises(ValidationFailedError) as caught:
        config_from_form([mapping], {"mapping": "{nope"})

    assert errors_by_field(caught.value.errors, prefix="config.")["mapping"].startswith(
        "not valid JSON"
    )


def test_empty_optional_inputs_are_left_out_and_secrets_never_sent_empty():
    fields = list(fields_of("twilio").values())

    config = config_from_form(fields, {"platform": "twilio", "accountSid": "AC1", "authToken": ""})

    assert config == {"platform": "twilio", "accountSid": "AC1"}


def test_errors_by_field_keeps_the_first_message_per_input():
    errors = [
        FieldError("config.a", "first"),
        FieldError("config.a", "second"),
        FieldError("name", "x"),
    ]
    assert errors_by_field(errors, prefix="config.") == {"a": "first", "name": "x"}


def test_a_nested_models_class_name_reads_as_words_with_a_skeleton_to_fill():
    mapping = fields_of("custom")["mapping"]
    assert mapping.label == "Field mapping"
    assert mapping.placeholder == '{"metric": "…", "timestamp": "…", "value": "…"}'
