"""Inflow next to its peers (dlt, tap-twilio, airbyte-source-twilio) on one fake Twilio.

Run it as ``.venv/bin/python -m bench.peers`` (see ``__main__``). The ``run_*.py`` scripts run in
the peers' own venvs, not in Inflow's.
"""
