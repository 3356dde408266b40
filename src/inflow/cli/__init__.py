"""The ``inflow`` command line."""
