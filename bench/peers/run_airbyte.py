"""airbyte-source-twilio in a run folder (run by its own venv's python, cwd = the folder).

    python run_airbyte.py read --config config.json --catalog catalog.json

The connector's ``manifest.yaml`` names ``https://api.twilio.com`` in every URL, but the CDK
reads ``./manifest.yaml`` from the working directory first: the benchmark copies the installed
manifest into a run folder with that host replaced by the fake's, and runs this script there.
It is the ``source-twilio`` console script with timing marks around it.
"""

from __future__ import annotations

import sys

from marks import mark
from source_twilio.run import run


def main() -> None:
    sys.argv[0] = "source-twilio"
    mark("start")
    try:
        run()
    finally:
        mark("end")


if __name__ == "__main__":
    main()
