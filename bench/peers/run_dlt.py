"""dlt's ``rest_api`` source reading Twilio's call log into duckdb (run by dlt's own venv).

    python run_dlt.py '{"base_url": ..., "account_sid": ..., "auth_token": ..., "page_size":
                        1000, "pipelines_dir": ..., "database": ...}'

Configured as a user would for https://api.twilio.com (only ``base_url`` differs): HTTP Basic
as the account, ``GET /2010-04-01/Accounts/{sid}/Calls.json`` with ``PageSize``, records under
``calls``, the ``json_link`` paginator on ``next_page_uri``; loaded with
``loader_file_format="jsonl"`` (dlt's default parquet-less path is several times slower and
needs gigabytes). Prints ``{"rows": N, "distinct": N}`` (counted in duckdb after the run).
"""

from __future__ import annotations

import json
import sys

import dlt
import duckdb
from dlt.sources.rest_api import rest_api_source
from marks import mark

DATASET = "twilio_calls"


def main() -> None:
    p = json.loads(sys.argv[1])
    source = rest_api_source(
        {
            "client": {
                "base_url": p["base_url"],
                "auth": {
                    "type": "http_basic",
                    "username": p["account_sid"],
                    "password": p["auth_token"],
                },
                "paginator": {"type": "json_link", "next_url_path": "next_page_uri"},
            },
            "resources": [
                {
                    "name": "calls",
                    "primary_key": "sid",
                    "write_disposition": "append",
                    "endpoint": {
                        "path": f"2010-04-01/Accounts/{p['account_sid']}/Calls.json",
                        "params": {"PageSize": p["page_size"]},
                        "data_selector": "calls",
                    },
                }
            ],
        }
    )
    mark("start")
    try:
        pipeline = dlt.pipeline(
            pipeline_name="inflow_bench_twilio",
            pipelines_dir=p["pipelines_dir"],
            destination=dlt.destinations.duckdb(p["database"]),
            dataset_name=DATASET,
        )
        pipeline.run(source, loader_file_format="jsonl")
    finally:
        mark("end")
    with duckdb.connect(p["database"], read_only=True) as db:
        rows, distinct = db.execute(
            f"SELECT count(*), count(DISTINCT sid) FROM {DATASET}.calls"  # noqa: S608
        ).fetchone()
    print(json.dumps({"rows": rows, "distinct": distinct}))


if __name__ == "__main__":
    main()
