"""The sandbox as a local fake ``api.twilio.com``: ``python -m bench.peers.server --port P``.

The sandbox serves its Twilio emulator under ``/twilio``, while Twilio's ``next_page_uri`` and
``subresource_uris`` are relative to the API host (``/2010-04-01/...``), as the emulator
faithfully returns them. Every tool here resolves them against the host root, as it would
against ``https://api.twilio.com``, so this process serves ``/2010-04-01/...`` as
``/twilio/2010-04-01/...`` and every tool is pointed at ``http://127.0.0.1:P`` alone.

Two more things make the runs comparable, and cost the same for every tool:

- ``--now`` freezes the sandbox clock, so every tool sees the same call log (no call starts,
  ends or changes between two tools' runs).
- Each ``Calls.json`` response's records are counted as they are sent (a ``"sid": "CA…"`` key
  occurs once per call: ``parent_call_sid`` is another key): ``GET /_bench/served`` returns the count, the number of
  requests and the seconds spent answering ``Calls.json`` since the last ``POST
  /_bench/served`` (which resets them). That is the number of records each tool read, counted
  the same way for all, and how much of its run was the fake's own work.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import uvicorn

from inflow.sandbox.app import create_app

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

VERSION = "/2010-04-01/"
SID = re.compile(rb'"sid"\s*:\s*"CA')  # only a call's own key is exactly "sid"


def rooted(app: ASGIApp, prefix: str = "/twilio") -> ASGIApp:
    """``app`` with Twilio's host-relative paths served under ``prefix``, and the counter."""
    served: dict[str, float] = {"records": 0, "requests": 0, "calls_requests": 0, "seconds": 0.0}

    async def answer(send: Send, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == "/_bench/served":
            body = orjson.dumps(served)
            if scope["method"] == "POST":
                served.update(records=0, requests=0, calls_requests=0, seconds=0.0)
            await answer(send, 200, body)
            return
        if path.startswith(VERSION):
            scope = dict(scope, path=prefix + path, raw_path=prefix.encode() + scope["raw_path"])
            path = scope["path"]
            served["requests"] += 1
        if not path.endswith("/Calls.json"):
            await app(scope, receive, send)
            return
        served["calls_requests"] += 1

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.body":
                served["records"] += sum(1 for _ in SID.finditer(message.get("body", b"")))
            await send(message)

        began = time.perf_counter()
        await app(scope, receive, counting)
        served["seconds"] += time.perf_counter() - began

    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--now", type=float, required=True, help="the frozen clock (epoch s)")
    args = parser.parse_args()
    frozen: float = args.now
    app = rooted(create_app(clock=lambda: frozen))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
