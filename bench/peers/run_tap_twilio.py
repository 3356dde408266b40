"""tap-twilio against a local fake Twilio (run by tap-twilio's own venv's python).

    python run_tap_twilio.py --config config.json [--catalog catalog.json | --discover]

The tap has no setting for its host: ``tap_twilio.client.API_URL`` (the account check) and
each ``STREAMS[...]["api_url"]`` (children included) are fixed to ``https://api.twilio.com``.
This wrapper reassigns them to ``INFLOW_BENCH_API_URL``. The tap sends no ``PageSize``, so it
would read Twilio's default pages of 50; with ``INFLOW_BENCH_PAGE_SIZE`` set, the calls stream
asks for pages of that size (the same pages as the other tools). Then ``tap_twilio.main()``
runs as its console script would, its Singer messages on stdout.
"""

from __future__ import annotations

import os
from typing import Any

import tap_twilio
from marks import mark
from tap_twilio import client, streams


def point(configs: dict[str, Any], url: str, page_size: str | None) -> None:
    for name, config in configs.items():
        config["api_url"] = url
        if name == "calls" and page_size:
            config["params"] = {"PageSize": page_size}
        point(config.get("children", {}), url, page_size)


def main() -> None:
    url = os.environ["INFLOW_BENCH_API_URL"].rstrip("/")
    client.API_URL = url
    point(streams.STREAMS, url, os.environ.get("INFLOW_BENCH_PAGE_SIZE"))
    mark("start")
    try:
        tap_twilio.main()
    finally:
        mark("end")


if __name__ == "__main__":
    main()
