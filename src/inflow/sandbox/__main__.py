"""`python -m inflow.sandbox [--host H] [--port P]`: the emulators alone, without the CLI."""

from __future__ import annotations

import argparse

import uvicorn

from inflow.sandbox.app import create_app


def main() -> None:
    """Serve the sandbox with uvicorn."""
    parser = argparse.ArgumentParser(prog="python -m inflow.sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
