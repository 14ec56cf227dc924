"""Reliability suite: crashes, concurrency, database restarts, model-based and bad-input tests.

CI runs the reduced form (`pytest tests/reliability`); `RELIABILITY_FULL=1 pytest tests/reliability`
runs the full form. See RELIABILITY.md at the repository root.
"""
