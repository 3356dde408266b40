"""Turn pydantic validation errors into field errors with dotted camelCase paths."""

from __future__ import annotations

from fastapi import Request
from pydantic import ValidationError

from inflow.errors import FieldError, ValidationFailedError


def field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    errors: list[FieldError] = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(part) for part in err["loc"])
        field = f"{prefix}.{path}" if prefix and path else (prefix or path)
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] in ("string_pattern_mismatch", "string_too_short") and err.get(
            "input"
        ) in ("", None):
            message = "required"  # an empty field: not "String should match pattern '^AC…'"
        errors.append(FieldError(field=field, message=message))
    return errors


def no_nul_in_parameters(request: Request) -> None:
    """A 422 naming each query or path parameter that holds a NUL character (PostgreSQL
    compares and stores no such text); bodies are checked by ``schemas.Schema``."""
    params = [*request.query_params.multi_items(), *request.path_params.items()]
    bad = [
        FieldError(name, "holds a NUL character (\\u0000)")
        for name, v in params
        if "\x00" in str(v)
    ]
    if bad:
        raise ValidationFailedError("the request has invalid fields", bad)
