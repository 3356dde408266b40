"""Form fields from a JSON schema (a connector's config schema), for the ``field`` macro.

Each property becomes a ``FormField``: its label (``title``), help text (``description``),
input kind, choices, default and whether it is required or secret. Secret fields
(``writeOnly``/``format: password``) are password inputs that are never pre-filled: a stored
secret shows only that one is set. Submitted values are read back with ``config_from_form``
(empty optional fields are left out, so defaults apply and stored secrets are kept).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from inflow.errors import FieldError

InputKind = str  # "text", "password", "number", "checkbox", "select", "url", "hidden"


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


def _kind(prop: Mapping[str, Any], secret: bool) -> tuple[InputKind, tuple[str, ...]]:
    if secret:
        return "password", ()
    if "const" in prop:
        return "hidden", ()
    if "enum" in prop:
        return "select", tuple(str(v) for v in prop["enum"])
    kind = prop.get("type")
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
                label=str(prop.get("title") or name),
                kind=kind,
                help=str(prop.get("description") or ""),
                required=name in required,
                secret=secret,
                default=prop.get("const", prop.get("default")),
                choices=choices,
                placeholder=f"e.g. {examples[0]}" if examples and not secret else "",
                pattern=prop.get("pattern") if kind == "text" else None,
                step="1"
                if prop.get("type") == "integer"
                else ("any" if kind == "number" else None),
            )
        )
    return fields


def config_from_form(fields: list[FormField], form: Mapping[str, Any]) -> dict[str, Any]:
    """The config a submitted form means: typed values; empty optional inputs left out."""
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
