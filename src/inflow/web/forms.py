"""Form fields from a JSON schema (a connector's config schema), for the ``field`` macro.

Each property becomes a ``FormField``: its label (``title``), help text (``description``),
input kind, choices, default and whether it is required or secret. Secret fields
(``writeOnly``/``format: password``) are password inputs that are never pre-filled: a stored
secret shows only that one is set. Submitted values are read back with ``config_from_form``
(empty optional fields are left out, so defaults apply and stored secrets are kept).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from inflow import bounds
from inflow.errors import FieldError, ValidationFailedError

# "text", "password", "number", "checkbox", "select", "url", "hidden"; and two textareas:
# "lines" (a list of strings, one a line) and "json" (an object, written as JSON)
InputKind = str


@dataclass(frozen=True)
class FormField:
    """One input of a generated form."""

    name: str  # the JSON name (camelCase), also the input's name
    label: str
    kind: InputKind
    help: str = ""
    required: bool = False
    secret: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    placeholder: str = ""
    pattern: str | None = None
    step: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dom_id(self) -> str:
        return "f-" + self.name


def _plain(prop: Mapping[str, Any]) -> Mapping[str, Any]:
    """The non-null branch of an optional property (``anyOf: [X, {type: null}]``)."""
    for branch in prop.get("anyOf", ()):
        if branch.get("type") != "null":
            return {**branch, **{k: v for k, v in prop.items() if k != "anyOf"}}
    return prop


def _label(name: str, prop: Mapping[str, Any]) -> str:
    """The property's title; a nested model's class name (``FieldMapping``) reads as words."""
    title = str(prop.get("title") or name)
    if "properties" in prop and " " not in title and any(c.isupper() for c in title[1:]):
        words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", title).split()
        title = " ".join([words[0], *(w.lower() for w in words[1:])])
    return title


def _json_placeholder(prop: Mapping[str, Any]) -> str:
    """An object's required keys, as a skeleton to fill in."""
    required = prop.get("required") or []
    return json.dumps(dict.fromkeys(required, "…"), ensure_ascii=False) if required else ""


def _kind(prop: Mapping[str, Any], secret: bool) -> tuple[InputKind, tuple[str, ...]]:
    if secret:
        return "password", ()
    if "const" in prop:
        return "hidden", ()
    if "enum" in prop:
        return "select", tuple(str(v) for v in prop["enum"])
    kind = prop.get("type")
    if kind == "array" and prop.get("items", {}).get("type") == "string":
        return "lines", ()
    if kind in ("object", "array"):
        return "json", ()
    if kind == "boolean":
        return "checkbox", ()
    if kind in ("integer", "number"):
        return "number", ()
    if prop.get("format") == "uri":
        return "url", ()
    return "text", ()


def form_fields(schema: Mapping[str, Any], *, skip: tuple[str, ...] = ()) -> list[FormField]:
    """The fields of an object schema, in its order; ``skip`` leaves some out (``platform``)."""
    required = set(schema.get("required", ()))
    fields: list[FormField] = []
    for name, raw in schema.get("properties", {}).items():
        if name in skip:
            continue
        prop = _plain(raw)
        secret = bool(raw.get("writeOnly") or prop.get("format") == "password")
        kind, choices = _kind(prop, secret)
        examples = prop.get("examples") or ()
        fields.append(
            FormField(
                name=name,
                label=_label(name, prop),
                kind=kind,
                help=str(prop.get("description") or ""),
                required=name in required,
                secret=secret,
                default=prop.get("const", prop.get("default")),
                choices=choices,
                placeholder=(
                    _json_placeholder(prop)
                    if kind == "json"
                    else (f"e.g. {examples[0]}" if examples and not secret else "")
                ),
                pattern=prop.get("pattern") if kind == "text" else None,
                step="1"
                if prop.get("type") == "integer"
                else ("any" if kind == "number" else None),
            )
        )
    return fields


def shown_value(f: FormField, value: Any) -> str:
    """A value as its input shows it (a list one item a line, an object as JSON)."""
    if value is None:
        return ""
    if f.kind == "lines" and isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if f.kind == "json" and not isinstance(value, str):
        return json.dumps(value, indent=2)
    return str(value)


def config_from_form(fields: list[FormField], form: Mapping[str, Any]) -> dict[str, Any]:
    """The config a submitted form means: typed values; empty optional inputs left out. A
    JSON field that does not parse is a ``ValidationFailedError`` naming it."""
    config: dict[str, Any] = {}
    for f in fields:
        raw = form.get(f.name)
        if f.kind == "checkbox":
            config[f.name] = raw is not None
            continue
        if not isinstance(raw, str) or raw.strip() == "":
            if f.required and not f.secret:
                config[f.name] = ""  # so the validation names the field as missing/too short
            continue
        value: Any = raw
        if f.kind == "lines":
            value = [line.strip() for line in raw.splitlines() if line.strip()]
        elif f.kind == "json":
            try:
                value = json.loads(raw)
            except ValueError as exc:
                raise ValidationFailedError(
                    "invalid config", [FieldError(f"config.{f.name}", f"not valid JSON: {exc}")]
                ) from None
        if f.kind == "number":
            try:
                value = float(raw) if f.step == "any" else int(raw)
            except ValueError:
                value = raw  # validation names it
        config[f.name] = value
    return config


def errors_by_field(errors: list[FieldError], prefix: str = "") -> dict[str, str]:
    """Field errors (``config.accountSid``) keyed by input name (``accountSid``)."""
    found: dict[str, str] = {}
    for e in errors:
        name = e.field.removeprefix(prefix) if prefix else e.field
        found.setdefault(name, e.message)
    return found


def form_day(value: str, name: str, errors: dict[str, str]) -> date | None:
    """A form's ``YYYY-MM-DD`` field (empty: None); a bad one is noted in ``errors[name]``."""
    if not value.strip():
        return None
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        errors[name] = "a date as YYYY-MM-DD"
        return None
    if not bounds.MIN_DATE <= day <= bounds.MAX_DATE:
        errors[name] = f"a date {bounds.DATE_RANGE}"
        return None
    return day
