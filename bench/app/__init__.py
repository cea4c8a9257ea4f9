"""Benchmark: cachestack_app against a flask-caching reference (``python -m bench.app``)."""
