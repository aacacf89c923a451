"""Benchmarks against a real server: `airec bench serving`, `airec bench ingest`."""
