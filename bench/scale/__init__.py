"""Syncs at scale: see ``__main__`` (``python -m bench.scale``)."""
