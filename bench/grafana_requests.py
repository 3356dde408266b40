"""What a Grafana sync costs in requests: the connector's streams read whole against the sandbox.

    .venv/bin/python -m bench.grafana_requests [--dashboards 5000] [--folders 12] [--subfolders 4]

Reads every stream a sync reads (folders down the tree, the search listing, each dashboard by
uid) through the real runtime, in process against the sandbox's Grafana (no database: the
requests are the cost measured here), then prints the sandbox's own request counts per endpoint
(`/_sandbox/grafana/stats`) as a Markdown table, with the formula they follow:
ceil(N / 5000) search pages + N dashboard reads + 1 + F folder listings. The same numbers are
asserted in tests/providers/test_grafana.py for 5,001 dashboards.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from typing import Any

import httpx

from inflow.connectors.grafana import CONNECTOR
from inflow.connectors.runtime import ConnectorRuntime
from inflow.http.client import HttpOptions
from inflow.sandbox import create_app
from inflow.sandbox.grafana import TOKEN

HOST = "http://sandbox.test"


async def measure(dashboards: int, folders: int, subfolders: int) -> dict[str, Any]:
    app = create_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=HOST) as control:
        volume = {"dashboards": dashboards, "folders": folders, "subfolders": subfolders}
        answer = await control.post("/_sandbox/grafana/config", json={"volume": volume})
        answer.raise_for_status()
        config = CONNECTOR.config.model_validate({"baseUrl": f"{HOST}/grafana", "apiKey": TOKEN})
        runtime = ConnectorRuntime(
            CONNECTOR,
            config,
            options=HttpOptions(allow_private_urls=True),
            key="bench",
            transport=httpx.ASGITransport(app=app),
        )
        records = 0
        started = time.perf_counter()
        async with runtime:
            for stream in CONNECTOR.streams:
                if stream.parse is None:
                    continue  # read for its children only, as the sync engine does
                async for chunk in runtime.read(stream):
                    records += len(chunk.records)
        seconds = time.perf_counter() - started
        stats = (await control.get("/_sandbox/grafana/stats")).json()
    return {"records": records, "seconds": seconds, "stats": stats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dashboards", type=int, default=5000)
    parser.add_argument("--folders", type=int, default=12)
    parser.add_argument("--subfolders", type=int, default=4)
    args = parser.parse_args()
    result = asyncio.run(measure(args.dashboards, args.folders, args.subfolders))
    stats = result["stats"]
    folder_count = args.folders + args.subfolders
    expected = math.ceil((args.dashboards + 1) / 5000) + args.dashboards + 1 + folder_count
    lines = [
        f"Grafana sync, {args.dashboards} dashboards in {folder_count} folders "
        f"({args.subfolders} nested): {result['records']} records",
        "",
        "| endpoint | requests |",
        "|---|---:|",
        *(f"| `{k}` | {v} |" for k, v in sorted(stats["byEndpoint"].items())),
        f"| **total** | **{stats['total']}** |",
        "",
        f"expected ceil((N + 1) / 5000) + N + 1 + F = {expected}; "
        f"read in {result['seconds']:.1f} s in process (one request at a time)",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
