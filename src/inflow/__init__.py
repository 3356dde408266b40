"""Inflow: a self-hosted data integration hub."""

__version__ = "0.1.0"
