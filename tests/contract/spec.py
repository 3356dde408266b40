"""Validate the emulators' responses against the providers' official specs (tests/contract/specs/).

Three formats: Swagger 2.0 (Power BI), OpenAPI 3.0 (Grafana, Twilio, RingCentral) and Google's
discovery documents (Looker Studio). Each is loaded once and normalised for a JSON Schema
(draft 4) validator: OpenAPI's ``nullable`` becomes a ``null`` type, discovery's bare ``$ref``
names become pointers. Formats (``date-time`` …) are not checked; types, required fields, enums
and nesting are.

    validate_response("powerbi-swagger.json", "GET", "/v1.0/myorg/groups", 200, body)
    validate_schema("datastudio-v1-discovery.json", "SearchAssetsResponse", body)
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPECS = Path(__file__).resolve().parent / "specs"


@lru_cache
def load(spec_file: str) -> dict[str, Any]:
    """The spec, normalised for a draft-4 validator."""
    text = (SPECS / spec_file).read_text()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader: 5 s → 1 s on 1.7 MB
    yaml_file = spec_file.endswith((".yaml", ".yml"))
    spec = yaml.load(text, Loader=loader) if yaml_file else json.loads(text)  # noqa: S506
    return _normalise(spec, discovery="discoveryVersion" in spec)


def _normalise(node: Any, *, discovery: bool) -> Any:
    if isinstance(node, list):
        return [_normalise(item, discovery=discovery) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _normalise(value, discovery=discovery) for key, value in node.items()}
    ref = out.get("$ref")
    if discovery and isinstance(ref, str) and not ref.startswith("#"):
        out["$ref"] = f"#/schemas/{ref}"
    if discovery and out.get("type") == "any":
        del out["type"]
    if (out.get("nullable") is True or out.get("x-nullable") is True) and isinstance(
        out.get("type"), str
    ):
        out["type"] = [out["type"], "null"]
        if isinstance(out.get("enum"), list):
            out["enum"] = [*out["enum"], None]
    return out


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _resolve(spec: dict[str, Any], pointer: str) -> Any:
    node: Any = spec
    for part in pointer.lstrip("/").split("/"):
        key = part.replace("~1", "/").replace("~0", "~")
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def _response_schema_pointer(
    spec: dict[str, Any], method: str, path: str, status: int
) -> str | None:
    paths = spec.get("paths", {})
    assert path in paths, f"the spec has no path {path!r}"
    operation = paths[path].get(method.lower())
    assert operation is not None, f"the spec has no {method.upper()} {path}"
    responses = operation.get("responses", {})
    code = str(status) if str(status) in responses else f"{str(status)[0]}XX"
    code = code if code in responses else "default"
    assert code in responses, f"{method.upper()} {path} documents no {status} response"
    pointer = f"/paths/{_escape(path)}/{method.lower()}/responses/{code}"
    response = responses[code]
    while "$ref" in response:  # OpenAPI 3: a shared response in components/responses
        pointer = response["$ref"].removeprefix("#")
        response = _resolve(spec, pointer)
    if "schema" in response:  # Swagger 2
        return f"{pointer}/schema"
    for media, content in response.get("content", {}).items():
        if "json" in media and "schema" in content:
            return f"{pointer}/content/{_escape(media)}/schema"
    return None  # the spec documents no body for this response


def _check(spec_file: str, pointer: str, body: Any, where: str) -> None:
    spec = load(spec_file)
    uri = f"urn:inflow-spec:{spec_file}"
    registry: Registry[Any] = Registry().with_resource(
        uri, Resource.from_contents(spec, default_specification=DRAFT4)
    )
    validator = Draft4Validator({"$ref": f"{uri}#{pointer}"}, registry=registry)
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [
            f"  at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}"
            for e in errors[:10]
        ]
        raise AssertionError(f"{where} does not match {spec_file}:\n" + "\n".join(lines))


def validate_response(spec_file: str, method: str, path: str, status: int, body: Any) -> None:
    """Check a response body against the spec's schema for ``method path`` and ``status``.

    ``path`` is the spec's own path template (``/v1.0/myorg/groups/{groupId}/reports``). A
    status the operation does not document is a failure; a documented status without a body
    schema accepts any body.
    """
    pointer = _response_schema_pointer(load(spec_file), method, path, status)
    if pointer is not None:
        _check(spec_file, pointer, body, f"{method.upper()} {path} → {status}")


def validate_schema(spec_file: str, name: str, body: Any) -> None:
    """Check a body against a named schema: Swagger ``definitions``, OpenAPI
    ``components/schemas`` or discovery ``schemas``."""
    spec = load(spec_file)
    for section in ("/definitions", "/components/schemas", "/schemas"):
        try:
            _resolve(spec, f"{section}/{_escape(name)}")
        except (KeyError, IndexError):
            continue
        _check(spec_file, f"{section}/{_escape(name)}", body, f"schema {name}")
        return
    raise AssertionError(f"{spec_file} has no schema named {name!r}")
