"""The engine tests use the shared Temporal fixtures of tests/conftest.py."""
