"""Benchmark: the sandbox through nginx on 127.0.0.1:8080 (``python -m bench.sandbox``)."""
