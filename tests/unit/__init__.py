"""Unit tests: pure logic (filters, policy parsing, identity, redaction, scope rules, sources
read from files) in this process; no server, no subprocess, no catalog, no embedding model
(tests/unit/conftest.py refuses the fixtures that would bring one)."""
