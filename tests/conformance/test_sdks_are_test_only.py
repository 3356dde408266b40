"""The official SDKs the conformance suite drives are test-only: no module of Inflow imports one
(the product speaks to providers through its own HTTP layer)."""

from __future__ import annotations

import ast
from pathlib import Path

import inflow

SDKS = {
    "twilio",
    "grafana_client",
    "ringcentral",
    "msal",
    "facebook_business",
    "googleapiclient",
    "google",
    "niquests",
    "requests",
}


def test_no_module_of_inflow_imports_an_sdk() -> None:
    found = []
    for path in Path(inflow.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            found += [(path.name, n) for n in names if n.split(".")[0] in SDKS]
    assert found == []
