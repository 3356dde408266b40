"""Turn pydantic validation errors into field errors with dotted camelCase paths."""

from __future__ import annotations

from pydantic import ValidationError

from inflow.errors import FieldError


def field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    errors: list[FieldError] = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(part) for part in err["loc"])
        field = f"{prefix}.{path}" if prefix and path else (prefix or path)
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        errors.append(FieldError(field=field, message=message))
    return errors
