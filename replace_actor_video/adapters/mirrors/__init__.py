"""Exact copies of upstream argument parsers, used by contract tests to parse the argv we build.

Each mirror names the upstream commit it copies; tests/test_contracts.py compares it with the real source
when a clone is present, so upstream drift fails a test instead of a user's GPU hour."""
