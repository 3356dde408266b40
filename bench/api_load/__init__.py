"""The API under load: ``python -m bench.api_load`` (see ``__main__`` and BENCHMARKS.md)."""
